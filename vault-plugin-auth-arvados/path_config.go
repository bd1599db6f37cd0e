package arvadosauth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/openbao/openbao/sdk/v2/framework"
	"github.com/openbao/openbao/sdk/v2/helper/policyutil"
	"github.com/openbao/openbao/sdk/v2/logical"
)

const configStorageKey = "config"

// Defaults for the optional config fields.
const (
	defaultCacheTTL       = 5 * time.Second
	defaultRequestTimeout = 10 * time.Second
	maxCacheTTL           = 5 * time.Minute
	// A token's identity is cached only when the admin asks for it: while cached, a token that
	// Arvados stopped accepting (its container finished, it was revoked) still logs in.
	defaultTokenCacheTTL = 0
	maxTokenCacheTTL     = time.Minute
)

var clusterIDPattern = regexp.MustCompile(`^[a-z0-9]{5}$`)

// arvadosConfig is the stored configuration. It lives in seal-wrapped storage because it holds
// the privileged token.
type arvadosConfig struct {
	APIHost  string `json:"arvados_api_host"`
	CACert   string `json:"ca_cert"`
	Insecure bool   `json:"insecure"`
	// PrivilegedToken is an Arvados admin token used only for membership, user and container
	// state checks. It is never returned by a read.
	PrivilegedToken string   `json:"privileged_token"`
	ClusterID       string   `json:"cluster_id"`
	AllowedPolicies []string `json:"allowed_policies"`
	// CacheTTL bounds how old a privileged answer (user record, membership) used at login may be.
	CacheTTL time.Duration `json:"cache_ttl"`
	// TokenCacheTTL bounds how old Arvados' answers about a client's token used at login may be.
	TokenCacheTTL  time.Duration `json:"token_cache_ttl"`
	RequestTimeout time.Duration `json:"request_timeout"`
}

// sameConnection reports whether a client built for `c` can serve `o` too.
func (c *arvadosConfig) sameConnection(o *arvadosConfig) bool {
	return c.APIHost == o.APIHost && c.CACert == o.CACert && c.Insecure == o.Insecure &&
		c.RequestTimeout == o.RequestTimeout && c.PrivilegedToken == o.PrivilegedToken &&
		c.ClusterID == o.ClusterID
}

const pathConfigHelpSyn = `Configure how Vault reaches the Arvados API and the policy ceiling.`

const pathConfigHelpDesc = `
arvados_api_host, cluster_id and privileged_token are required. allowed_policies is the ceiling:
no role can be written with, and no login is ever granted, a policy outside these glob patterns.
privileged_token (an Arvados admin token) is stored seal-wrapped and never returned.
`

func pathConfig(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "config",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "arvados",
		},
		Fields: map[string]*framework.FieldSchema{
			"arvados_api_host": {
				Type:        framework.TypeString,
				Description: `Arvados API server: a URL (https://zzzzz.example.org) or host[:port], which means https.`,
			},
			"ca_cert": {
				Type:        framework.TypeString,
				Description: `PEM CA certificate(s) to verify the Arvados API server with, instead of the system roots.`,
			},
			"insecure": {
				Type:        framework.TypeBool,
				Description: `Skip TLS certificate verification of the Arvados API server. Tests only.`,
			},
			"privileged_token": {
				Type:        framework.TypeString,
				Description: `Arvados admin token used for membership, user and container checks. Write-only.`,
				DisplayAttrs: &framework.DisplayAttributes{
					Sensitive: true,
				},
			},
			"cluster_id": {
				Type:        framework.TypeString,
				Description: `Five-character Arvados cluster id; tokens, users and containers of other clusters are refused.`,
			},
			"allowed_policies": {
				Type:        framework.TypeCommaStringSlice,
				Description: `Policy ceiling: glob patterns ("arvados-*"); roles and logins never exceed it.`,
			},
			"cache_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: `How long a user record and group membership asked at login are reused (0 disables; at most 5m). Renewal never uses the cache.`,
				Default:     int(defaultCacheTTL.Seconds()),
			},
			"token_cache_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: `How long Arvados' answers about a token (its authorization and Running container) are reused for more logins with the same token (default 0: never; at most 1m). While reused, a token Arvados no longer accepts still logs in.`,
				Default:     int(defaultTokenCacheTTL / time.Second),
			},
			"request_timeout": {
				Type:        framework.TypeDurationSecond,
				Description: `Timeout of one Arvados API request.`,
				Default:     int(defaultRequestTimeout.Seconds()),
			},
		},
		ExistenceCheck: b.pathConfigExistenceCheck,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   &framework.PathOperation{Callback: b.pathConfigRead},
			logical.CreateOperation: &framework.PathOperation{Callback: b.pathConfigWrite},
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigWrite},
			logical.DeleteOperation: &framework.PathOperation{Callback: b.pathConfigDelete},
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: strings.TrimSpace(pathConfigHelpDesc),
	}
}

// config reads the stored config; (nil, nil) when there is none.
func (b *backend) config(ctx context.Context, s logical.Storage) (*arvadosConfig, error) {
	entry, err := s.Get(ctx, configStorageKey)
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, nil
	}
	var cfg arvadosConfig
	if err := entry.DecodeJSON(&cfg); err != nil {
		return nil, fmt.Errorf("decoding stored config: %w", err)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defaultRequestTimeout
	}
	return &cfg, nil
}

func (b *backend) pathConfigExistenceCheck(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return false, err
	}
	return cfg != nil, nil
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, nil
	}
	allowed := cfg.AllowedPolicies
	if allowed == nil {
		allowed = []string{}
	}
	return &logical.Response{
		Data: map[string]any{
			"arvados_api_host":     cfg.APIHost,
			"ca_cert":              cfg.CACert,
			"insecure":             cfg.Insecure,
			"cluster_id":           cfg.ClusterID,
			"allowed_policies":     allowed,
			"cache_ttl":            int64(cfg.CacheTTL.Seconds()),
			"token_cache_ttl":      int64(cfg.TokenCacheTTL.Seconds()),
			"request_timeout":      int64(cfg.RequestTimeout.Seconds()),
			"privileged_token_set": cfg.PrivilegedToken != "",
		},
	}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &arvadosConfig{}
		// Defaults apply only on create; an update keeps what is stored.
		cfg.CacheTTL = time.Duration(d.Get("cache_ttl").(int)) * time.Second
		cfg.TokenCacheTTL = time.Duration(d.Get("token_cache_ttl").(int)) * time.Second
		cfg.RequestTimeout = time.Duration(d.Get("request_timeout").(int)) * time.Second
	}
	if v, ok := d.GetOk("arvados_api_host"); ok {
		cfg.APIHost = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("ca_cert"); ok {
		cfg.CACert = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("insecure"); ok {
		cfg.Insecure = v.(bool)
	}
	if v, ok := d.GetOk("privileged_token"); ok {
		cfg.PrivilegedToken = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("cluster_id"); ok {
		cfg.ClusterID = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("allowed_policies"); ok {
		cfg.AllowedPolicies = normalizePolicyPatterns(v.([]string))
	}
	if v, ok := d.GetOk("cache_ttl"); ok {
		cfg.CacheTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("token_cache_ttl"); ok {
		cfg.TokenCacheTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("request_timeout"); ok {
		cfg.RequestTimeout = time.Duration(v.(int)) * time.Second
	}

	if err := cfg.validate(); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}

	entry, err := logical.StorageEntryJSON(configStorageKey, cfg)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	b.reset()

	var resp logical.Response
	if len(cfg.AllowedPolicies) == 0 {
		resp.AddWarning("allowed_policies is empty: no role can carry a policy and logins get only the default policy")
	}
	if cfg.Insecure {
		resp.AddWarning("insecure is set: the Arvados API server's certificate is not verified")
	}
	if cfg.TokenCacheTTL > 0 {
		resp.AddWarning(fmt.Sprintf("token_cache_ttl is %s: for that long after a login, the same Arvados token logs in again without asking Arvados, even if its container finished or it was revoked meanwhile", cfg.TokenCacheTTL))
	}
	if strings.HasPrefix(cfg.APIHost, "http://") {
		resp.AddWarning("arvados_api_host uses plain http: tokens travel unencrypted")
	}
	if len(resp.Warnings) == 0 {
		return nil, nil
	}
	return &resp, nil
}

// validate checks a complete config before it is stored.
func (c *arvadosConfig) validate() error {
	if c.APIHost == "" {
		return errors.New("arvados_api_host is required")
	}
	if _, err := parseAPIHost(c.APIHost); err != nil {
		return err
	}
	if c.CACert != "" {
		if err := checkPEM(c.CACert); err != nil {
			return err
		}
	}
	if c.PrivilegedToken == "" {
		return errors.New("privileged_token is required (an Arvados admin token for membership and container checks)")
	}
	if _, err := parseToken(c.PrivilegedToken); err != nil {
		return errors.New("privileged_token does not look like an Arvados token")
	}
	if !clusterIDPattern.MatchString(c.ClusterID) {
		return errors.New("cluster_id is required: five lowercase letters or digits, the uuid prefix of the Arvados cluster")
	}
	for _, p := range c.AllowedPolicies {
		if p == "root" {
			return errors.New(`allowed_policies must not include "root"`)
		}
	}
	if c.CacheTTL < 0 || c.CacheTTL > maxCacheTTL {
		return fmt.Errorf("cache_ttl must be between 0 and %s", maxCacheTTL)
	}
	if c.TokenCacheTTL < 0 || c.TokenCacheTTL > maxTokenCacheTTL {
		return fmt.Errorf("token_cache_ttl must be between 0 and %s", maxTokenCacheTTL)
	}
	if c.RequestTimeout <= 0 || c.RequestTimeout > 5*time.Minute {
		return errors.New("request_timeout must be between 1s and 5m")
	}
	return nil
}

// checkPEM makes sure `s` holds at least one parseable certificate.
func checkPEM(s string) error {
	rest := []byte(s)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("ca_cert holds an unparseable certificate: %w", err)
		}
		n++
	}
	if n == 0 {
		return errors.New("ca_cert holds no PEM certificate")
	}
	return nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := req.Storage.Delete(ctx, configStorageKey); err != nil {
		return nil, err
	}
	b.reset()
	return nil, nil
}

// normalizePolicyPatterns lowercases, trims, drops empties and duplicates, and sorts.
func normalizePolicyPatterns(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// globMatch reports whether `name` matches `pattern`, where `*` matches any run of characters
// (including none) and every other character matches itself.
func globMatch(pattern, name string) bool {
	// Iterative matching with backtracking to the last star.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// withinCeiling reports whether policy `p` is allowed by the glob patterns `ceiling`. "root" is
// never allowed, whatever the patterns say.
func withinCeiling(p string, ceiling []string) bool {
	if p == "root" {
		return false
	}
	for _, pat := range ceiling {
		if globMatch(pat, p) {
			return true
		}
	}
	return false
}

// outsideCeiling lists the policies of `policies` the ceiling does not allow. "default" is added
// by Vault itself and is governed by token_no_default_policy, so it is not checked here.
func outsideCeiling(policies, ceiling []string) []string {
	var out []string
	for _, p := range policies {
		if p == "default" {
			continue
		}
		if !withinCeiling(p, ceiling) {
			out = append(out, p)
		}
	}
	return out
}

// effectivePolicies is role ∩ ceiling: what a login may carry today.
func effectivePolicies(rolePolicies, ceiling []string) []string {
	out := []string{}
	for _, p := range policyutil.SanitizePolicies(append([]string(nil), rolePolicies...), policyutil.DoNotAddDefaultPolicy) {
		if p == "default" || withinCeiling(p, ceiling) {
			out = append(out, p)
		}
	}
	return out
}
