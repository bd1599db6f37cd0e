// Package arvadosauth is an OpenBao/Vault auth method that lets an Arvados container (or user)
// log in with its own Arvados API token. Vault asks the Arvados API who the token belongs to,
// checks the role's bindings against that answer, and issues a token whose policies never exceed
// the ceiling the Vault admin configured.
package arvadosauth

import (
	"context"
	"strings"
	"sync"

	"github.com/openbao/openbao/sdk/v2/framework"
	"github.com/openbao/openbao/sdk/v2/logical"
)

const backendHelp = `
The "arvados" auth method lets a process inside an Arvados container log in with the
container's own Arvados API token (ARVADOS_API_TOKEN). Vault validates the token against the
Arvados API, checks the role's bound users, bound groups (transitive membership) and container
state, and grants the role's policies, capped by the allowed_policies ceiling of the config.
`

// Factory returns a configured instance of the backend.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// backend is the Arvados auth method.
type backend struct {
	*framework.Backend

	// mu guards client and cache, which are rebuilt from the stored config when it changes.
	mu     sync.RWMutex
	client *arvadosClient
	// clientFor is the config the client was built from; a different config rebuilds it.
	clientFor *arvadosConfig
	cache     *lookupCache
}

func newBackend() *backend {
	b := &backend{cache: newLookupCache()}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeCredential,
		PathsSpecial: &logical.Paths{
			Unauthenticated: []string{"login"},
			SealWrapStorage: []string{"config"},
		},
		Paths: framework.PathAppend(
			[]*framework.Path{pathConfig(b), pathLogin(b)},
			pathRole(b),
		),
		AuthRenew:      b.pathLoginRenew,
		Invalidate:     b.invalidate,
		RunningVersion: pluginVersion,
	}
	return b
}

// invalidate drops derived state when another node changes the config.
func (b *backend) invalidate(_ context.Context, key string) {
	if key == configStorageKey {
		b.reset()
	}
}

// reset forgets the Arvados client and every cached lookup.
func (b *backend) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.client = nil
	b.clientFor = nil
	b.cache.clear()
}

// arvados returns a client for `cfg`, building it once per config.
func (b *backend) arvados(cfg *arvadosConfig) (*arvadosClient, error) {
	b.mu.RLock()
	if b.client != nil && b.clientFor != nil && b.clientFor.sameConnection(cfg) {
		c := b.client
		b.mu.RUnlock()
		return c, nil
	}
	b.mu.RUnlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil && b.clientFor != nil && b.clientFor.sameConnection(cfg) {
		return b.client, nil
	}
	c, err := newArvadosClient(cfg.APIHost, cfg.CACert, cfg.Insecure, cfg.RequestTimeout)
	if err != nil {
		return nil, err
	}
	b.client = c
	copied := *cfg
	b.clientFor = &copied
	b.cache.clear()
	return c, nil
}
