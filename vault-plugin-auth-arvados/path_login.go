package arvadosauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/openbao/openbao/sdk/v2/framework"
	"github.com/openbao/openbao/sdk/v2/helper/policyutil"
	"github.com/openbao/openbao/sdk/v2/logical"
)

// Keys of logical.Auth.InternalData and Metadata.
const (
	keyRole          = "role"
	keyUserUUID      = "user_uuid"
	keyUsername      = "username"
	keyContainerUUID = "container_uuid"
)

const pathLoginHelpSyn = `Log in with an Arvados API token (normally a running container's token).`

const pathLoginHelpDesc = `
Body: {"role": "<role>", "arvados_token": "<token>"}. The token is checked against the Arvados
API (api_client_authorizations/current, containers/current); the owner's user record and the
role's bindings are checked with the privileged token. The token is never stored, logged or
returned.
`

func pathLogin(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "login$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "arvados",
			OperationVerb:   "login",
		},
		Fields: map[string]*framework.FieldSchema{
			"role": {
				Type:        framework.TypeString,
				Description: "Name of the role to log in with.",
			},
			"arvados_token": {
				Type:        framework.TypeString,
				Description: "Arvados API token: v2/<uuid>/<secret>/<container uuid> inside a container.",
				DisplayAttrs: &framework.DisplayAttributes{
					Sensitive: true,
				},
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathLogin},
		},
		HelpSynopsis:    pathLoginHelpSyn,
		HelpDescription: strings.TrimSpace(pathLoginHelpDesc),
	}
}

// identity is what Arvados says about a token.
type identity struct {
	AuthUUID  string
	User      *apiUser
	Container *apiContainer // nil for a token that is not a container's
}

// refusal is a login or renewal that Arvados' answers do not allow. Its message is shown to the
// client; it never contains a token.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refuse(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}

// toResponse turns an error of the login or renew path into what Vault returns: a refusal is a
// 400 with its message; an unreachable Arvados is a 502 (clients may retry, nobody gets in); a
// rejected privileged token is a 500 naming the config.
func toResponse(err error) (*logical.Response, error) {
	var rf *refusal
	if errors.As(err, &rf) {
		return logical.ErrorResponse(rf.msg), nil
	}
	var ue *unreachableError
	if errors.As(err, &ue) {
		return nil, logical.CodedError(http.StatusBadGateway, ue.Error())
	}
	return nil, err
}

func (b *backend) pathLogin(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := strings.ToLower(strings.TrimSpace(d.Get("role").(string)))
	token := d.Get("arvados_token").(string)
	if roleName == "" {
		return logical.ErrorResponse("role is required"), nil
	}
	if token == "" {
		return logical.ErrorResponse("arvados_token is required"), nil
	}

	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse("the Arvados auth method is not configured"), nil
	}
	role, err := b.role(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse(fmt.Sprintf("role %q does not exist", roleName)), nil
	}

	id, err := b.verifyLogin(ctx, cfg, role, roleName, token)
	if err != nil {
		var rf *refusal
		if errors.As(err, &rf) {
			b.Logger().Info("login refused", "role", roleName, "reason", rf.msg)
		} else {
			b.Logger().Warn("login failed", "role", roleName, "error", err.Error())
		}
		return toResponse(err)
	}

	policies := effectivePolicies(role.TokenPolicies, cfg.AllowedPolicies)
	if dropped := outsideCeiling(role.TokenPolicies, cfg.AllowedPolicies); len(dropped) > 0 {
		b.Logger().Warn("role policies outside the ceiling were not granted", "role", roleName, "policies", dropped)
	}

	containerUUID := ""
	if id.Container != nil {
		containerUUID = id.Container.UUID
	}
	displayName := id.User.Username
	if displayName == "" {
		displayName = id.User.UUID
	}
	auth := &logical.Auth{
		InternalData: map[string]any{
			keyRole:          roleName,
			keyUserUUID:      id.User.UUID,
			keyContainerUUID: containerUUID,
		},
		Metadata: map[string]string{
			keyRole:          roleName,
			keyUserUUID:      id.User.UUID,
			keyUsername:      id.User.Username,
			keyContainerUUID: containerUUID,
		},
		DisplayName: displayName,
		Alias: &logical.Alias{
			Name:     id.User.UUID,
			Metadata: map[string]string{keyUsername: id.User.Username},
		},
	}
	for _, g := range id.groups {
		auth.GroupAliases = append(auth.GroupAliases, &logical.Alias{Name: g})
	}
	if err := role.PopulateTokenAuth(auth, req); err != nil {
		return nil, err
	}
	auth.Policies = policies
	return &logical.Response{Auth: auth}, nil
}

// verifiedLogin is an identity that passed every binding of the role, with the bound groups the
// user is a member of.
type verifiedLogin struct {
	identity
	groups []string
}

// verifyLogin asks Arvados about `token` and checks every binding of `role`. Arvados is asked in
// two rounds of requests made at the same time: with the token itself, its authorization and
// its container; then, with the privileged token, the user record and the membership. Answers
// may come from the cache (see lookupCache and the README's "Arvados calls per login").
func (b *backend) verifyLogin(ctx context.Context, cfg *arvadosConfig, role *arvadosRole, roleName, token string) (*verifiedLogin, error) {
	parsed, err := parseToken(token)
	if err != nil {
		return nil, refuse("%s", err.Error())
	}
	if parsed.AuthUUID != "" && clusterOf(parsed.AuthUUID) != cfg.ClusterID {
		return nil, refuse("the token belongs to cluster %q; this auth method accepts only cluster %q", clusterOf(parsed.AuthUUID), cfg.ClusterID)
	}
	if parsed.ContainerUUID != "" && clusterOf(parsed.ContainerUUID) != cfg.ClusterID {
		return nil, refuse("the token's container belongs to cluster %q; this auth method accepts only cluster %q", clusterOf(parsed.ContainerUUID), cfg.ClusterID)
	}
	if role.RequireContainer && parsed.AuthUUID != "" && parsed.ContainerUUID == "" {
		return nil, refuse("role %q requires a container token (v2/<uuid>/<secret>/<container uuid>) of a running container", roleName)
	}
	client, err := b.arvados(cfg)
	if err != nil {
		return nil, err
	}

	ans, err := b.askAboutToken(ctx, cfg, client, token, parsed)
	if err != nil {
		return nil, err
	}
	owner := ans.Auth.OwnerUUID
	if ans.Container == nil && role.RequireContainer {
		return nil, refuse("role %q requires a container token of a running container; this token is not a container's", roleName)
	}
	if ans.Container != nil && ans.Container.State != containerRunning {
		return nil, refuse("container %s is %s, not Running", ans.Container.UUID, ans.Container.State)
	}
	if !userBound(role, owner) {
		return nil, refuse("Arvados user %s is not in bound_user_uuids of role %q", owner, roleName)
	}

	// The user record and the membership do not depend on each other: ask both at once.
	var (
		groups    []string
		groupsErr error
		wg        sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		groups, groupsErr = b.boundGroupsOf(ctx, cfg, client, role, owner, true)
	}()
	user, userErr := b.loginUser(ctx, cfg, client, owner)
	wg.Wait()
	if userErr != nil {
		return nil, userErr
	}
	if !user.IsActive {
		return nil, refuse("Arvados user %s is not active", user.UUID)
	}
	if groupsErr != nil {
		return nil, groupsErr
	}
	if len(role.BoundGroupUUIDs) > 0 && len(groups) == 0 {
		return nil, refuse("Arvados user %s is not a member of any group in bound_group_uuids of role %q", owner, roleName)
	}
	id := identity{AuthUUID: ans.Auth.UUID, User: user, Container: ans.Container}
	return &verifiedLogin{identity: id, groups: groups}, nil
}

// tokenAnswers is what Arvados says about a token when asked with the token itself.
type tokenAnswers struct {
	Auth apiAuthorization
	// Container is nil when Arvados says the token is not a container's.
	Container *apiContainer
}

// askAboutToken asks Arvados, with `token` itself, for its authorization and its container (both
// requests at once), or takes them from the cache when token_cache_ttl allows, and checks that
// the answers agree with each other, with the token and with the cluster id. Only answers that
// pass these checks and show a Running container (or none) are cached.
func (b *backend) askAboutToken(ctx context.Context, cfg *arvadosConfig, client *arvadosClient, token string, parsed parsedToken) (*tokenAnswers, error) {
	v, err := b.cache.fetch(ctx, b.cache.tokenKeyFor(token), cfg.TokenCacheTTL,
		func(ctx context.Context) (any, error) { return fetchTokenAnswers(ctx, client, token) },
		func(v any) bool {
			ans := v.(*tokenAnswers)
			return checkTokenAnswers(cfg, parsed, ans) == nil &&
				(ans.Container == nil || ans.Container.State == containerRunning)
		})
	if err != nil {
		return nil, userTokenError(err)
	}
	ans := v.(*tokenAnswers)
	if err := checkTokenAnswers(cfg, parsed, ans); err != nil {
		return nil, err
	}
	return ans, nil
}

// fetchTokenAnswers makes the two requests with the client's token concurrently.
func fetchTokenAnswers(ctx context.Context, client *arvadosClient, token string) (any, error) {
	var (
		ctr    *apiContainer
		ctrErr error
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctr, ctrErr = client.currentContainer(ctx, token)
	}()
	auth, authErr := client.currentAuthorization(ctx, token)
	wg.Wait()
	// The authorization's verdict on the token comes first: a rejected token is reported as
	// such even if the container request failed in another way.
	if authErr != nil {
		return nil, authErr
	}
	if ctrErr != nil {
		return nil, ctrErr
	}
	return &tokenAnswers{Auth: *auth, Container: ctr}, nil
}

// checkTokenAnswers checks Arvados' answers about a token against each other, the token's own
// parts and the configured cluster.
func checkTokenAnswers(cfg *arvadosConfig, parsed parsedToken, ans *tokenAnswers) error {
	auth := ans.Auth
	if !isUUID(auth.UUID, infixAuthorization) || (parsed.AuthUUID != "" && auth.UUID != parsed.AuthUUID) {
		return refuse("Arvados answered with an authorization that does not match the token")
	}
	if clusterOf(auth.UUID) != cfg.ClusterID {
		return refuse("the token belongs to cluster %q; this auth method accepts only cluster %q", clusterOf(auth.UUID), cfg.ClusterID)
	}
	if !allScopes(auth.Scopes) {
		return refuse("the token is scoped (scopes %v); only tokens with scopes [\"all\"] can log in", auth.Scopes)
	}
	if !isUUID(auth.OwnerUUID, infixUser) {
		return refuse("Arvados answered with an authorization whose owner is not a user")
	}
	if clusterOf(auth.OwnerUUID) != cfg.ClusterID {
		return refuse("Arvados user %s belongs to cluster %q; this auth method accepts only cluster %q", auth.OwnerUUID, clusterOf(auth.OwnerUUID), cfg.ClusterID)
	}
	ctr := ans.Container
	if ctr == nil {
		if parsed.ContainerUUID != "" {
			return refuse("the token names container %s, but Arvados does not associate it with a container", parsed.ContainerUUID)
		}
		return nil
	}
	switch {
	case !isUUID(ctr.UUID, infixContainer):
		return refuse("Arvados answered containers/current without a container uuid")
	case parsed.ContainerUUID != "" && ctr.UUID != parsed.ContainerUUID:
		return refuse("the token names container %s, but it is the token of container %s", parsed.ContainerUUID, ctr.UUID)
	case clusterOf(ctr.UUID) != cfg.ClusterID:
		return refuse("container %s belongs to another cluster", ctr.UUID)
	case ctr.AuthUUID != "" && ctr.AuthUUID != auth.UUID:
		return refuse("container %s does not run with this token", ctr.UUID)
	case ctr.RuntimeUserUUID != "" && ctr.RuntimeUserUUID != auth.OwnerUUID:
		return refuse("container %s does not run as user %s", ctr.UUID, auth.OwnerUUID)
	}
	return nil
}

// loginUser returns the record of the token's owner, asked with the privileged token (Arvados
// named the owner in the token's authorization), reused for up to cache_ttl.
func (b *backend) loginUser(ctx context.Context, cfg *arvadosConfig, client *arvadosClient, userUUID string) (*apiUser, error) {
	v, err := b.cache.fetch(ctx, "user:"+userUUID, cfg.CacheTTL,
		func(ctx context.Context) (any, error) { return client.user(ctx, cfg.PrivilegedToken, userUUID) }, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil, refuse("Arvados user %s, the token's owner, does not exist", userUUID)
	}
	if err != nil {
		return nil, privilegedError(err)
	}
	user := v.(*apiUser)
	if user.UUID != userUUID {
		return nil, refuse("Arvados answered users/%s with a different user", userUUID)
	}
	return user, nil
}

// allScopes reports whether a token's scopes allow everything. A scoped token was made for a
// narrow purpose (say, reading one collection) and must not open Vault.
func allScopes(scopes []string) bool {
	return len(scopes) == 1 && scopes[0] == "all"
}

// userTokenError maps an Arvados error for the client's own token to a refusal.
func userTokenError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusUnauthorized:
			return refuse("Arvados rejected the token (401): not a valid token, expired or revoked, or its container is no longer running")
		case http.StatusForbidden:
			return refuse("Arvados refused the token (403): %s", strings.Join(ae.Messages, "; "))
		default:
			return refuse("Arvados did not accept the token (%d): %s", ae.Status, strings.Join(ae.Messages, "; "))
		}
	}
	return err
}

// privilegedError maps an Arvados error for a call made with the privileged token. A 401/403
// means the config is wrong, which is the Vault admin's problem, not the client's.
func privilegedError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		return logical.CodedError(http.StatusInternalServerError,
			fmt.Sprintf("Arvados refused the privileged token of the auth method's config (%d); it must be a valid admin token", ae.Status))
	}
	return err
}

// userBound reports whether bound_user_uuids of `role` admits `userUUID`.
func userBound(role *arvadosRole, userUUID string) bool {
	if len(role.BoundUserUUIDs) == 0 {
		return true
	}
	for _, u := range role.BoundUserUUIDs {
		if u == anyUser || u == userUUID {
			return true
		}
	}
	return false
}

// boundGroupsOf returns the role's bound groups `userUUID` is a member of, asked with the
// privileged token. `useCache` allows an answer up to cache_ttl old (login only).
func (b *backend) boundGroupsOf(ctx context.Context, cfg *arvadosConfig, client *arvadosClient, role *arvadosRole, userUUID string, useCache bool) ([]string, error) {
	if len(role.BoundGroupUUIDs) == 0 {
		return nil, nil
	}
	groups := append([]string(nil), role.BoundGroupUUIDs...)
	sort.Strings(groups)
	key := "member:" + userUUID + ":" + strings.Join(groups, ",")
	ask := func(ctx context.Context) (any, error) {
		member, err := client.memberGroups(ctx, cfg.PrivilegedToken, userUUID, groups)
		if err != nil {
			return nil, err
		}
		sort.Strings(member)
		return member, nil
	}
	ttl := cfg.CacheTTL
	if !useCache {
		// Renewal asks afresh; a fresh answer is as good as any for the logins that follow.
		v, err := ask(ctx)
		if err != nil {
			return nil, privilegedError(err)
		}
		b.cache.put(key, v, ttl)
		return v.([]string), nil
	}
	v, err := b.cache.fetch(ctx, key, ttl, ask, nil)
	if err != nil {
		return nil, privilegedError(err)
	}
	return v.([]string), nil
}

// pathLoginRenew allows a renewal only if everything that allowed the login still holds, asked
// afresh with the privileged token: the role exists with the same effective policies, the user
// is active, bound and a member, and the container (if the login was a container's) is Running.
func (b *backend) pathLoginRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if req.Auth == nil {
		return nil, errors.New("request auth was nil")
	}
	roleName, _ := req.Auth.InternalData[keyRole].(string)
	userUUID, _ := req.Auth.InternalData[keyUserUUID].(string)
	containerUUID, _ := req.Auth.InternalData[keyContainerUUID].(string)
	if roleName == "" || userUUID == "" {
		return logical.ErrorResponse("the token lacks the data needed to renew it; log in again"), nil
	}

	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse("the Arvados auth method is no longer configured"), nil
	}
	role, err := b.role(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse(fmt.Sprintf("role %q no longer exists; not renewing", roleName)), nil
	}
	granted := req.Auth.TokenPolicies
	if len(granted) == 0 {
		granted = req.Auth.Policies
	}
	if !policyutil.EquivalentPolicies(effectivePolicies(role.TokenPolicies, cfg.AllowedPolicies), granted) {
		return logical.ErrorResponse(fmt.Sprintf("the policies of role %q changed since login; not renewing, log in again", roleName)), nil
	}

	if err := b.verifyRenew(ctx, cfg, role, roleName, userUUID, containerUUID); err != nil {
		var rf *refusal
		if errors.As(err, &rf) {
			b.Logger().Info("renewal refused", "role", roleName, "user_uuid", userUUID, "reason", rf.msg)
		}
		return toResponse(err)
	}

	resp := &logical.Response{Auth: req.Auth}
	resp.Auth.TTL = role.TokenTTL
	resp.Auth.MaxTTL = role.TokenMaxTTL
	resp.Auth.Period = role.TokenPeriod
	return resp, nil
}

// verifyRenew re-checks a login's user and container with the privileged token, bypassing the
// cache.
func (b *backend) verifyRenew(ctx context.Context, cfg *arvadosConfig, role *arvadosRole, roleName, userUUID, containerUUID string) error {
	client, err := b.arvados(cfg)
	if err != nil {
		return err
	}
	user, err := client.user(ctx, cfg.PrivilegedToken, userUUID)
	if isStatus(err, http.StatusNotFound) {
		return refuse("Arvados user %s no longer exists; not renewing", userUUID)
	}
	if err != nil {
		return privilegedError(err)
	}
	if user.UUID != userUUID || !user.IsActive {
		return refuse("Arvados user %s is no longer active; not renewing", userUUID)
	}
	if !userBound(role, userUUID) {
		return refuse("Arvados user %s is no longer in bound_user_uuids of role %q; not renewing", userUUID, roleName)
	}
	if containerUUID == "" {
		if role.RequireContainer {
			return refuse("role %q now requires a container token; not renewing", roleName)
		}
	} else {
		ctr, err := client.container(ctx, cfg.PrivilegedToken, containerUUID)
		if isStatus(err, http.StatusNotFound) {
			return refuse("container %s no longer exists; not renewing", containerUUID)
		}
		if err != nil {
			return privilegedError(err)
		}
		if ctr.UUID != containerUUID || ctr.State != containerRunning {
			return refuse("container %s is %s, not Running; not renewing", containerUUID, ctr.State)
		}
	}
	groups, err := b.boundGroupsOf(ctx, cfg, client, role, userUUID, false)
	if err != nil {
		return err
	}
	if len(role.BoundGroupUUIDs) > 0 && len(groups) == 0 {
		return refuse("Arvados user %s is no longer a member of any group in bound_group_uuids of role %q; not renewing", userUUID, roleName)
	}
	return nil
}
