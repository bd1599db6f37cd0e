package arvadosauth

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/openbao/openbao/sdk/v2/framework"
	"github.com/openbao/openbao/sdk/v2/helper/policyutil"
	"github.com/openbao/openbao/sdk/v2/helper/tokenutil"
	"github.com/openbao/openbao/sdk/v2/logical"
)

const rolePrefix = "role/"

// anyUser in bound_user_uuids lets every active user of the cluster log in (subject to the other
// bindings).
const anyUser = "*"

// arvadosRole is a stored role. All bindings must hold for a login to succeed.
type arvadosRole struct {
	tokenutil.TokenParams

	// BoundUserUUIDs lists the users who may log in; "*" means any user of the cluster.
	BoundUserUUIDs []string `json:"bound_user_uuids"`
	// BoundGroupUUIDs, when not empty, requires membership (transitive) in at least one group.
	BoundGroupUUIDs []string `json:"bound_group_uuids"`
	// RequireContainer accepts only tokens of a container in state Running.
	RequireContainer bool `json:"require_container"`
}

const pathRoleHelpSyn = `Manage roles: which Arvados users, groups and containers get which policies.`

const pathRoleHelpDesc = `
A login with role R succeeds only if every binding of R holds: the user is listed in
bound_user_uuids (or it holds "*"), the user is a member, directly or through nested groups, of at
least one of bound_group_uuids (when set), and, with require_container (the default), the token
is the token of a container in state Running. At least one of bound_user_uuids and
bound_group_uuids must be set. token_policies must lie within the config's allowed_policies.
`

func pathRole(b *backend) []*framework.Path {
	fields := map[string]*framework.FieldSchema{
		"name": {
			Type:        framework.TypeString,
			Description: "Name of the role.",
		},
		"bound_user_uuids": {
			Type:        framework.TypeCommaStringSlice,
			Description: `Arvados user uuids allowed to log in; "*" allows any user of the cluster.`,
		},
		"bound_group_uuids": {
			Type:        framework.TypeCommaStringSlice,
			Description: "Arvados group uuids; the user must be a member (transitively) of at least one.",
		},
		"require_container": {
			Type:        framework.TypeBool,
			Description: "Accept only the token of a container in state Running (default true).",
			Default:     true,
		},
	}
	tokenutil.AddTokenFields(fields)

	return []*framework.Path{
		{
			Pattern: "role/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "arvados",
				OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{Callback: b.pathRoleList},
			},
			HelpSynopsis:    "List the roles.",
			HelpDescription: "Lists the names of all roles.",
		},
		{
			Pattern: "role/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "arvados",
				OperationSuffix: "role",
			},
			Fields:         fields,
			ExistenceCheck: b.pathRoleExistenceCheck,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathRoleRead},
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathRoleWrite},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathRoleWrite},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathRoleDelete},
			},
			HelpSynopsis:    pathRoleHelpSyn,
			HelpDescription: strings.TrimSpace(pathRoleHelpDesc),
		},
	}
}

// role reads a stored role; (nil, nil) when it does not exist.
func (b *backend) role(ctx context.Context, s logical.Storage, name string) (*arvadosRole, error) {
	entry, err := s.Get(ctx, rolePrefix+strings.ToLower(name))
	if err != nil {
		return nil, err
	}
	if entry == nil {
		return nil, nil
	}
	var r arvadosRole
	if err := entry.DecodeJSON(&r); err != nil {
		return nil, fmt.Errorf("decoding stored role: %w", err)
	}
	return &r, nil
}

func (b *backend) pathRoleExistenceCheck(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	r, err := b.role(ctx, req.Storage, d.Get("name").(string))
	if err != nil {
		return false, err
	}
	return r != nil, nil
}

func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, rolePrefix)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, err := b.role(ctx, req.Storage, d.Get("name").(string))
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, nil
	}
	data := map[string]any{
		"bound_user_uuids":  nonNil(r.BoundUserUUIDs),
		"bound_group_uuids": nonNil(r.BoundGroupUUIDs),
		"require_container": r.RequireContainer,
	}
	r.PopulateTokenData(data)
	return &logical.Response{Data: data}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := strings.ToLower(d.Get("name").(string))
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse("configure the auth method first (write config): roles are checked against its cluster_id and allowed_policies"), nil
	}

	r, err := b.role(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &arvadosRole{RequireContainer: d.Get("require_container").(bool)}
	}
	if err := r.ParseTokenFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	r.TokenPolicies = policyutil.SanitizePolicies(r.TokenPolicies, policyutil.DoNotAddDefaultPolicy)
	if v, ok := d.GetOk("bound_user_uuids"); ok {
		r.BoundUserUUIDs = normalizeUUIDs(v.([]string))
	}
	if v, ok := d.GetOk("bound_group_uuids"); ok {
		r.BoundGroupUUIDs = normalizeUUIDs(v.([]string))
	}
	if v, ok := d.GetOk("require_container"); ok {
		r.RequireContainer = v.(bool)
	}

	if err := r.validate(cfg); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}

	entry, err := logical.StorageEntryJSON(rolePrefix+name, r)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, err
	}
	var resp logical.Response
	if !r.RequireContainer {
		resp.AddWarning("require_container is false: a user's personal Arvados token can log in with this role, not only a running container")
	}
	if len(r.TokenPolicies) == 0 {
		resp.AddWarning("token_policies is empty: logins get only the default policy")
	}
	if len(resp.Warnings) == 0 {
		return nil, nil
	}
	return &resp, nil
}

// validate checks a role against the config: well-formed uuids of this cluster, at least one
// binding, and policies within the ceiling.
func (r *arvadosRole) validate(cfg *arvadosConfig) error {
	if len(r.BoundUserUUIDs) == 0 && len(r.BoundGroupUUIDs) == 0 {
		return errors.New(`a role must bind bound_user_uuids or bound_group_uuids (use bound_user_uuids="*" for any user of the cluster)`)
	}
	for _, u := range r.BoundUserUUIDs {
		if u == anyUser {
			continue
		}
		if !isUUID(u, infixUser) {
			return fmt.Errorf("bound_user_uuids: %q is not an Arvados user uuid (xxxxx-tpzed-...)", u)
		}
		if clusterOf(u) != cfg.ClusterID {
			return fmt.Errorf("bound_user_uuids: %q belongs to cluster %q, not %q", u, clusterOf(u), cfg.ClusterID)
		}
	}
	for _, g := range r.BoundGroupUUIDs {
		if !isUUID(g, infixGroup) {
			return fmt.Errorf("bound_group_uuids: %q is not an Arvados group uuid (xxxxx-j7d0g-...)", g)
		}
		if clusterOf(g) != cfg.ClusterID {
			return fmt.Errorf("bound_group_uuids: %q belongs to cluster %q, not %q", g, clusterOf(g), cfg.ClusterID)
		}
	}
	if out := outsideCeiling(r.TokenPolicies, cfg.AllowedPolicies); len(out) > 0 {
		ceiling := "(empty)"
		if len(cfg.AllowedPolicies) > 0 {
			ceiling = strings.Join(cfg.AllowedPolicies, ", ")
		}
		return fmt.Errorf("token_policies %s exceed the ceiling: config allowed_policies is %s; ask the Vault admin to widen allowed_policies or choose other policies",
			quoteList(out), ceiling)
	}
	return nil
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// normalizeUUIDs trims, drops empties and duplicates, and sorts.
func normalizeUUIDs(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, u := range in {
		u = strings.TrimSpace(u)
		if u == "" || seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := req.Storage.Delete(ctx, rolePrefix+strings.ToLower(d.Get("name").(string))); err != nil {
		return nil, err
	}
	return nil, nil
}
