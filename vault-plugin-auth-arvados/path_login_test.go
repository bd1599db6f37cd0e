package arvadosauth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openbao/openbao/sdk/v2/logical"
)

// setupRoles writes the roles the login tests use.
func setupRoles(t *testing.T, tb *testBackend) {
	t.Helper()
	tb.mustWrite(t, "role/lab", map[string]any{"bound_group_uuids": labGroup, "token_policies": "arvados-lab", "token_ttl": "10m", "token_max_ttl": "1h"})
	tb.mustWrite(t, "role/other", map[string]any{"bound_group_uuids": otherGrp, "token_policies": "arvados-other"})
	tb.mustWrite(t, "role/alice-only", map[string]any{"bound_user_uuids": alice, "token_policies": "arvados-alice"})
	tb.mustWrite(t, "role/personal", map[string]any{"bound_user_uuids": "*", "require_container": false, "token_policies": "arvados-user"})
	tb.mustWrite(t, "role/bob-and-lab", map[string]any{"bound_user_uuids": bob, "bound_group_uuids": labGroup, "token_policies": "arvados-lab"})
}

func TestLogin(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, nil)
	setupRoles(t, tb)

	alice3 := plainToken(t, "zzzzz-gj3su-alicectrrun0001")
	cases := []struct {
		name      string
		role      string
		token     string
		wantErr   string
		wantUser  string
		wantCtr   string
		wantPols  string
		wantGroup string
	}{
		{name: "member's running container", role: "lab", token: containerToken(t, aliceRun1), wantUser: alice, wantCtr: aliceRun1, wantPols: "arvados-lab", wantGroup: labGroup},
		{name: "nested group member", role: "lab", token: containerToken(t, daveRun), wantUser: dave, wantCtr: daveRun, wantPols: "arvados-lab", wantGroup: labGroup},
		{name: "other group's member", role: "lab", token: containerToken(t, bobRun), wantErr: "is not a member of any group in bound_group_uuids"},
		{name: "member of no group", role: "lab", token: containerToken(t, eveRun), wantErr: "is not a member"},
		{name: "bob in his group", role: "other", token: containerToken(t, bobRun), wantUser: bob, wantCtr: bobRun, wantPols: "arvados-other", wantGroup: otherGrp},
		{name: "alice in bob's group", role: "other", token: containerToken(t, aliceRun1), wantErr: "is not a member"},
		{name: "inactive user", role: "lab", token: containerToken(t, carolRun), wantErr: "is not active"},
		{name: "complete container", role: "lab", token: containerToken(t, aliceDone), wantErr: "Arvados rejected the token (401)"},
		{name: "locked container", role: "lab", token: containerToken(t, aliceLock), wantErr: "is Locked, not Running"},
		{name: "personal token, container required", role: "lab", token: plainToken(t, alicePersonal), wantErr: "requires a container token"},
		{name: "container's token without container part", role: "lab", token: alice3, wantErr: "requires a container token"},
		{name: "personal token allowed", role: "personal", token: plainToken(t, alicePersonal), wantUser: alice, wantCtr: "", wantPols: "arvados-user"},
		{name: "container token on a personal role", role: "personal", token: containerToken(t, aliceRun1), wantUser: alice, wantCtr: aliceRun1, wantPols: "arvados-user"},
		{name: "scoped token", role: "personal", token: plainToken(t, aliceScoped), wantErr: "the token is scoped"},
		{name: "expired token", role: "personal", token: plainToken(t, aliceExpired), wantErr: "Arvados rejected the token (401)"},
		{name: "wrong secret", role: "personal", token: "v2/" + alicePersonal + "/canarywrongsecret", wantErr: "Arvados rejected the token (401)"},
		{name: "other container's uuid appended", role: "lab", token: alice3 + "/" + aliceRun2, wantErr: "Arvados rejected the token (401)"},
		{name: "foreign cluster token", role: "lab", token: "v2/yyyyy-gj3su-alicectrrun0001/canaryforeign/yyyyy-dz642-alicerunning001", wantErr: `belongs to cluster "yyyyy"`},
		{name: "foreign container part", role: "lab", token: alice3 + "/yyyyy-dz642-alicerunning001", wantErr: `container belongs to cluster "yyyyy"`},
		{name: "malformed token", role: "lab", token: "v2/nonsense", wantErr: "not of the form"},
		{name: "token with a newline", role: "lab", token: containerToken(t, aliceRun1) + "\n", wantErr: "characters an Arvados token never has"},
		{name: "user bound", role: "alice-only", token: containerToken(t, aliceRun1), wantUser: alice, wantCtr: aliceRun1, wantPols: "arvados-alice"},
		{name: "user not bound", role: "alice-only", token: containerToken(t, bobRun), wantErr: "is not in bound_user_uuids"},
		{name: "all bindings must hold", role: "bob-and-lab", token: containerToken(t, aliceRun1), wantErr: "is not in bound_user_uuids"},
		{name: "all bindings must hold (2)", role: "bob-and-lab", token: containerToken(t, bobRun), wantErr: "is not a member"},
		{name: "unknown role", role: "nope", token: containerToken(t, aliceRun1), wantErr: `role "nope" does not exist`},
		{name: "no role", role: "", token: containerToken(t, aliceRun1), wantErr: "role is required"},
		{name: "no token", role: "lab", token: "", wantErr: "arvados_token is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tb.login(t, tc.role, tc.token)
			noSecretIn(t, "the login response", fmt.Sprintf("%+v %v", resp, err))
			if resp != nil && resp.Auth != nil {
				noSecretIn(t, "the auth", fmt.Sprintf("%+v %+v %+v", *resp.Auth, resp.Auth.Alias, resp.Auth.GroupAliases))
			}
			got := errorText(resp, err)
			if tc.wantErr != "" {
				if !strings.Contains(got, tc.wantErr) {
					t.Fatalf("want error containing %q, got %q", tc.wantErr, got)
				}
				if err != nil {
					t.Fatalf("a refusal must be an error response (400), not an error: %v", err)
				}
				if resp.Auth != nil {
					t.Fatal("a refused login carries auth")
				}
				return
			}
			if got != "" {
				t.Fatalf("unexpected error: %s", got)
			}
			a := resp.Auth
			if a.Metadata["user_uuid"] != tc.wantUser || a.Metadata["container_uuid"] != tc.wantCtr || a.Metadata["role"] != tc.role {
				t.Errorf("metadata: %v", a.Metadata)
			}
			if a.Metadata["username"] == "" || a.DisplayName != a.Metadata["username"] {
				t.Errorf("username/display name: %v %q", a.Metadata, a.DisplayName)
			}
			if strings.Join(a.Policies, ",") != tc.wantPols {
				t.Errorf("policies: %v", a.Policies)
			}
			if a.Alias == nil || a.Alias.Name != tc.wantUser {
				t.Errorf("alias: %+v", a.Alias)
			}
			var groups []string
			for _, g := range a.GroupAliases {
				groups = append(groups, g.Name)
			}
			if strings.Join(groups, ",") != tc.wantGroup {
				t.Errorf("group aliases: %v", groups)
			}
			if !a.Renewable {
				t.Error("auth should be renewable")
			}
			if a.InternalData["role"] != tc.role || a.InternalData["user_uuid"] != tc.wantUser || a.InternalData["container_uuid"] != tc.wantCtr {
				t.Errorf("internal data: %v", a.InternalData)
			}
		})
	}
}

func TestLoginTTLsAndCeiling(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, nil)
	tb.mustWrite(t, "role/lab", map[string]any{
		"bound_group_uuids": labGroup, "token_policies": "arvados-lab,lab-extra",
		"token_ttl": "10m", "token_max_ttl": "1h", "token_num_uses": 3, "token_bound_cidrs": "127.0.0.1/32",
	})
	resp, err := tb.login(t, "lab", containerToken(t, aliceRun1))
	if errorText(resp, err) != "" {
		t.Fatal(errorText(resp, err))
	}
	a := resp.Auth
	if a.TTL != 10*time.Minute || a.MaxTTL != time.Hour || a.NumUses != 3 || len(a.BoundCIDRs) != 1 {
		t.Errorf("token params not applied: ttl=%v max=%v uses=%d cidrs=%v", a.TTL, a.MaxTTL, a.NumUses, a.BoundCIDRs)
	}
	if strings.Join(a.Policies, ",") != "arvados-lab,lab-extra" {
		t.Errorf("policies: %v", a.Policies)
	}

	// The Vault admin tightens the ceiling after the role was written: logins get role ∩ ceiling.
	tb.mustWrite(t, "config", map[string]any{"allowed_policies": "arvados-*"})
	resp, err = tb.login(t, "lab", containerToken(t, aliceRun1))
	if errorText(resp, err) != "" {
		t.Fatal(errorText(resp, err))
	}
	if strings.Join(resp.Auth.Policies, ",") != "arvados-lab" {
		t.Errorf("policies above the new ceiling were granted: %v", resp.Auth.Policies)
	}
	if !strings.Contains(tb.logs.String(), "outside the ceiling") {
		t.Error("dropping policies should be logged")
	}
}

func TestLoginFailsClosed(t *testing.T) {
	// Nothing listens on a port we just closed.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := "http://" + l.Addr().String()
	l.Close()

	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, nil)
	setupRoles(t, tb)

	check := func(t *testing.T, wantHost string) {
		t.Helper()
		resp, err := tb.login(t, "lab", containerToken(t, aliceRun1))
		if resp != nil && resp.Auth != nil {
			t.Fatal("login succeeded without Arvados")
		}
		var coded logical.HTTPCodedError
		if !errors.As(err, &coded) || coded.Code() != http.StatusBadGateway {
			t.Fatalf("want a 502 coded error, got %v %v", resp, err)
		}
		if !strings.Contains(err.Error(), "cannot reach Arvados API at "+wantHost) {
			t.Fatalf("message: %v", err)
		}
		noSecretIn(t, "the error", err.Error())
	}

	t.Run("outage 503", func(t *testing.T) {
		s.control(t, "POST", "outage", map[string]any{"status": 503})
		defer s.control(t, "POST", "outage", map[string]any{"status": 0})
		check(t, s.URL)
	})
	t.Run("outage 500", func(t *testing.T) {
		s.control(t, "POST", "outage", map[string]any{"status": 500})
		defer s.control(t, "POST", "outage", map[string]any{"status": 0})
		check(t, s.URL)
	})
	t.Run("nothing listening", func(t *testing.T) {
		tb.mustWrite(t, "config", map[string]any{"arvados_api_host": addr})
		check(t, addr)
	})
	t.Run("stand-in killed", func(t *testing.T) {
		tb.mustWrite(t, "config", map[string]any{"arvados_api_host": s.URL})
		if resp, err := tb.login(t, "lab", containerToken(t, aliceRun1)); errorText(resp, err) != "" {
			t.Fatalf("login before the kill: %s", errorText(resp, err))
		}
		s.stop()
		check(t, s.URL)
	})
}

func TestLoginPrivilegedTokenRejected(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	// A non-admin token cannot list computed_permissions.
	tb.configure(t, s, map[string]any{"privileged_token": plainToken(t, alicePersonal)})
	setupRoles(t, tb)
	resp, err := tb.login(t, "lab", containerToken(t, aliceRun1))
	var coded logical.HTTPCodedError
	if !errors.As(err, &coded) || coded.Code() != http.StatusInternalServerError || !strings.Contains(err.Error(), "privileged token") {
		t.Fatalf("want a 500 about the privileged token, got %v %v", resp, err)
	}
	noSecretIn(t, "the error", err.Error())
}

func TestLoginOverTLS(t *testing.T) {
	caPEM, cert, key := writeTLSFiles(t)
	s := startStandin(t, cert, key)
	tb := newTestBackend(t)
	tb.configure(t, s, map[string]any{"ca_cert": caPEM})
	setupRoles(t, tb)
	resp, err := tb.login(t, "lab", containerToken(t, aliceRun1))
	if got := errorText(resp, err); got != "" {
		t.Fatalf("login over TLS: %s", got)
	}

	// Without the CA the server is not trusted: fail closed.
	tb2 := newTestBackend(t)
	tb2.configure(t, s, nil)
	setupRoles(t, tb2)
	resp, err = tb2.login(t, "lab", containerToken(t, aliceRun1))
	if err == nil || !strings.Contains(err.Error(), "cannot reach Arvados API") || (resp != nil && resp.Auth != nil) {
		t.Fatalf("want fail-closed without the CA, got %v %v", resp, err)
	}
}

func TestLoginMembershipCache(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, map[string]any{"cache_ttl": "60s"})
	setupRoles(t, tb)
	const perms = "/arvados/v1/computed_permissions"
	for i := 0; i < 3; i++ {
		if resp, err := tb.login(t, "lab", containerToken(t, aliceRun1)); errorText(resp, err) != "" {
			t.Fatal(errorText(resp, err))
		}
	}
	if n := s.requestCount(t, perms); n != 1 {
		t.Fatalf("membership asked %d times with a cache, want 1", n)
	}
	// The token itself is checked on every login, cache or not.
	if n := s.requestCount(t, "/arvados/v1/api_client_authorizations/current"); n != 3 {
		t.Fatalf("token checked %d times, want 3", n)
	}
	// A config write clears the cache.
	tb.mustWrite(t, "config", map[string]any{"cache_ttl": "60s"})
	resp, _ := tb.login(t, "lab", containerToken(t, aliceRun1))
	if n := s.requestCount(t, perms); n != 2 {
		t.Fatalf("membership asked %d times after a config write, want 2", n)
	}
	// Renewal never uses the cache.
	if r, err := tb.renew(t, resp.Auth); errorText(r, err) != "" {
		t.Fatal(errorText(r, err))
	}
	if n := s.requestCount(t, perms); n != 3 {
		t.Fatalf("renewal did not ask Arvados afresh (%d)", n)
	}
}

func TestRenew(t *testing.T) {
	type step func(t *testing.T, s *standin, tb *testBackend)
	cases := []struct {
		name    string
		role    string
		ctr     string
		change  step
		wantErr string
		coded   int
	}{
		{name: "nothing changed", role: "lab", ctr: aliceRun2},
		{name: "container completed", role: "lab", ctr: aliceRun2, wantErr: "is Complete, not Running",
			change: func(t *testing.T, s *standin, _ *testBackend) {
				s.control(t, "POST", "containers/"+aliceRun2, map[string]any{"state": "Complete"})
			}},
		{name: "container cancelled", role: "lab", ctr: aliceRun2, wantErr: "is Cancelled, not Running",
			change: func(t *testing.T, s *standin, _ *testBackend) {
				s.control(t, "POST", "containers/"+aliceRun2, map[string]any{"state": "Cancelled"})
			}},
		{name: "user deactivated", role: "lab", ctr: aliceRun2, wantErr: "is no longer active",
			change: func(t *testing.T, s *standin, _ *testBackend) {
				s.control(t, "POST", "users/"+alice, map[string]any{"is_active": false})
			}},
		{name: "membership removed", role: "lab", ctr: aliceRun2, wantErr: "no longer a member",
			change: func(t *testing.T, s *standin, _ *testBackend) {
				s.control(t, "DELETE", "links/zzzzz-o0j2j-linkalicelab001", nil)
			}},
		{name: "nested membership removed", role: "lab", ctr: daveRun, wantErr: "no longer a member",
			change: func(t *testing.T, s *standin, _ *testBackend) {
				s.control(t, "DELETE", "links/zzzzz-o0j2j-linkanallab0001", nil)
			}},
		{name: "role policies changed", role: "lab", ctr: aliceRun2, wantErr: "changed since login",
			change: func(t *testing.T, _ *standin, tb *testBackend) {
				tb.mustWrite(t, "role/lab", map[string]any{"token_policies": "arvados-lab,arvados-more"})
			}},
		{name: "ceiling tightened", role: "lab", ctr: aliceRun2, wantErr: "changed since login",
			change: func(t *testing.T, _ *standin, tb *testBackend) {
				tb.mustWrite(t, "config", map[string]any{"allowed_policies": "nothing-*"})
			}},
		{name: "role deleted", role: "lab", ctr: aliceRun2, wantErr: "no longer exists",
			change: func(t *testing.T, _ *standin, tb *testBackend) {
				_, _ = tb.request(t, logical.DeleteOperation, "role/lab", nil)
			}},
		{name: "user unbound", role: "alice-only", ctr: aliceRun2, wantErr: "no longer in bound_user_uuids",
			change: func(t *testing.T, _ *standin, tb *testBackend) {
				tb.mustWrite(t, "role/alice-only", map[string]any{"bound_user_uuids": bob})
			}},
		{name: "Arvados unreachable", role: "lab", ctr: aliceRun2, wantErr: "cannot reach Arvados API", coded: http.StatusBadGateway,
			change: func(t *testing.T, s *standin, _ *testBackend) {
				s.control(t, "POST", "outage", map[string]any{"status": 503})
			}},
	}
	s := startStandin(t, "", "")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.control(t, "POST", "reset", nil)
			tb := newTestBackend(t)
			tb.configure(t, s, nil)
			setupRoles(t, tb)
			resp, err := tb.login(t, tc.role, containerToken(t, tc.ctr))
			if got := errorText(resp, err); got != "" {
				t.Fatalf("login: %s", got)
			}
			if tc.change != nil {
				tc.change(t, s, tb)
			}
			r, err := tb.renew(t, resp.Auth)
			noSecretIn(t, "the renew response", fmt.Sprintf("%+v %v", r, err))
			got := errorText(r, err)
			if tc.wantErr == "" {
				if got != "" {
					t.Fatalf("renew: %s", got)
				}
				if r.Auth == nil || r.Auth.TTL != 10*time.Minute || r.Auth.MaxTTL != time.Hour {
					t.Fatalf("renew auth: %+v", r.Auth)
				}
				return
			}
			if !strings.Contains(got, tc.wantErr) {
				t.Fatalf("want error containing %q, got %q", tc.wantErr, got)
			}
			if tc.coded != 0 {
				var coded logical.HTTPCodedError
				if !errors.As(err, &coded) || coded.Code() != tc.coded {
					t.Fatalf("want coded error %d, got %v", tc.coded, err)
				}
			}
		})
	}
	s.control(t, "POST", "reset", nil)
}

func TestRenewPersonalToken(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, nil)
	setupRoles(t, tb)
	resp, err := tb.login(t, "personal", plainToken(t, alicePersonal))
	if got := errorText(resp, err); got != "" {
		t.Fatal(got)
	}
	if r, err := tb.renew(t, resp.Auth); errorText(r, err) != "" {
		t.Fatalf("renew: %s", errorText(r, err))
	}
	// The role now requires a container: a personal login cannot be renewed.
	tb.mustWrite(t, "role/personal", map[string]any{"require_container": true})
	r, err := tb.renew(t, resp.Auth)
	if got := errorText(r, err); !strings.Contains(got, "now requires a container token") {
		t.Fatalf("got %q", got)
	}
}

// fakeArvados answers each API path with a fixed JSON body, whatever the token: it plays an
// Arvados server whose answers disagree with each other.
func fakeArvados(t *testing.T, answers map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := answers[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":["Path not found"]}`))
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLoginInconsistentArvadosAnswers(t *testing.T) {
	const (
		authUUID = "zzzzz-gj3su-0123456789abcde"
		ctrUUID  = "zzzzz-dz642-0123456789abcde"
		token    = "v2/" + authUUID + "/canaryfakesecret/" + ctrUUID
		apiAuth  = "/arvados/v1/api_client_authorizations/current"
		apiUser  = "/arvados/v1/users/" + alice
		apiCtr   = "/arvados/v1/containers/current"
		apiPerms = "/arvados/v1/computed_permissions"
	)
	good := func() map[string]string {
		return map[string]string{
			apiAuth:  `{"uuid":"` + authUUID + `","owner_uuid":"` + alice + `","scopes":["all"]}`,
			apiUser:  `{"uuid":"` + alice + `","username":"alice","is_active":true}`,
			apiCtr:   `{"uuid":"` + ctrUUID + `","state":"Running","auth_uuid":"` + authUUID + `","runtime_user_uuid":"` + alice + `"}`,
			apiPerms: `{"items":[{"user_uuid":"` + alice + `","target_uuid":"` + labGroup + `","perm_level":"can_read"}]}`,
		}
	}
	cases := []struct {
		name    string
		path    string
		body    string
		wantErr string
	}{
		{"consistent", "", "", ""},
		{"authorization of another token", apiAuth, `{"uuid":"zzzzz-gj3su-aaaaaaaaaaaaaaa","owner_uuid":"` + alice + `","scopes":["all"]}`, "does not match the token"},
		{"authorization of another cluster", apiAuth, `{"uuid":"yyyyy-gj3su-0123456789abcde","owner_uuid":"` + alice + `","scopes":["all"]}`, "does not match the token"},
		{"owner is someone else", apiAuth, `{"uuid":"` + authUUID + `","owner_uuid":"` + bob + `","scopes":["all"]}`, "does not run as user " + bob},
		{"owner is not a user", apiAuth, `{"uuid":"` + authUUID + `","owner_uuid":"` + labGroup + `","scopes":["all"]}`, "whose owner is not a user"},
		{"owner of another cluster", apiAuth, `{"uuid":"` + authUUID + `","owner_uuid":"yyyyy-tpzed-aliceinlab00001","scopes":["all"]}`, "belongs to cluster \"yyyyy\""},
		{"no scopes", apiAuth, `{"uuid":"` + authUUID + `","owner_uuid":"` + alice + `"}`, "scoped"},
		{"user record of another cluster", apiUser, `{"uuid":"yyyyy-tpzed-aliceinlab00001","is_active":true}`, "with a different user"},
		{"user record of someone else", apiUser, `{"uuid":"` + bob + `","is_active":true}`, "with a different user"},
		{"user record without uuid", apiUser, `{"username":"alice","is_active":true}`, "with a different user"},
		{"user record inactive", apiUser, `{"uuid":"` + alice + `","is_active":false}`, "is not active"},
		{"no user record", apiUser, "", "does not exist"},
		{"another container", apiCtr, `{"uuid":"zzzzz-dz642-aaaaaaaaaaaaaaa","state":"Running"}`, "it is the token of container"},
		{"container runs with another token", apiCtr, `{"uuid":"` + ctrUUID + `","state":"Running","auth_uuid":"zzzzz-gj3su-aaaaaaaaaaaaaaa"}`, "does not run with this token"},
		{"container runs as another user", apiCtr, `{"uuid":"` + ctrUUID + `","state":"Running","runtime_user_uuid":"` + bob + `"}`, "does not run as user"},
		{"no container for a container token", apiCtr, "", "does not associate it with a container"},
		{"permission rows about someone else", apiPerms, `{"items":[{"user_uuid":"` + bob + `","target_uuid":"` + labGroup + `","perm_level":"can_manage"}]}`, "is not a member"},
		{"permission rows about another group", apiPerms, `{"items":[{"user_uuid":"` + alice + `","target_uuid":"` + otherGrp + `","perm_level":"can_manage"}]}`, "is not a member"},
		{"unknown permission level", apiPerms, `{"items":[{"user_uuid":"` + alice + `","target_uuid":"` + labGroup + `","perm_level":"can_fly"}]}`, "is not a member"},
		{"answer not JSON", apiUser, `<html>`, "cannot reach Arvados API"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			answers := good()
			if tc.path != "" {
				if tc.body == "" {
					delete(answers, tc.path)
				} else {
					answers[tc.path] = tc.body
				}
			}
			tb := newTestBackend(t)
			tb.mustWrite(t, "config", map[string]any{
				"arvados_api_host": fakeArvados(t, answers), "cluster_id": "zzzzz",
				"privileged_token": "v2/zzzzz-gj3su-admintoken00001/privileged", "allowed_policies": "arvados-*",
			})
			tb.mustWrite(t, "role/lab", map[string]any{"bound_group_uuids": labGroup, "token_policies": "arvados-lab"})
			resp, err := tb.login(t, "lab", token)
			got := errorText(resp, err)
			noSecretIn(t, "the answer", got)
			if tc.wantErr == "" {
				if got != "" {
					t.Fatalf("unexpected error: %s", got)
				}
				return
			}
			if !strings.Contains(got, tc.wantErr) {
				t.Fatalf("want error containing %q, got %q", tc.wantErr, got)
			}
			if resp != nil && resp.Auth != nil {
				t.Fatal("refused login carries auth")
			}
		})
	}
}
