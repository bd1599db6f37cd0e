package arvadosauth

import (
	"strings"
	"testing"

	"github.com/openbao/openbao/sdk/v2/logical"
)

func TestRoleRequiresConfig(t *testing.T) {
	tb := newTestBackend(t)
	resp, err := tb.request(t, logical.CreateOperation, "role/etl", map[string]any{"bound_user_uuids": alice})
	if got := errorText(resp, err); !strings.Contains(got, "configure the auth method first") {
		t.Fatalf("got %q", got)
	}
}

func TestRoleWriteValidation(t *testing.T) {
	cases := []struct {
		name    string
		data    map[string]any
		wantErr string
	}{
		{"group bound", map[string]any{"bound_group_uuids": labGroup, "token_policies": "arvados-lab"}, ""},
		{"user bound", map[string]any{"bound_user_uuids": alice + "," + bob}, ""},
		{"any user", map[string]any{"bound_user_uuids": "*", "token_policies": "arvados-user"}, ""},
		{"default policy is fine", map[string]any{"bound_user_uuids": "*", "token_policies": "default,arvados-x"}, ""},
		{"no binding", map[string]any{"token_policies": "arvados-lab"}, "must bind"},
		{"not a user uuid", map[string]any{"bound_user_uuids": labGroup}, "not an Arvados user uuid"},
		{"not a group uuid", map[string]any{"bound_group_uuids": alice}, "not an Arvados group uuid"},
		{"foreign user", map[string]any{"bound_user_uuids": "yyyyy-tpzed-aliceinlab00001"}, `belongs to cluster "yyyyy"`},
		{"foreign group", map[string]any{"bound_group_uuids": "yyyyy-j7d0g-labgroup0000001"}, `belongs to cluster "yyyyy"`},
		{"above ceiling", map[string]any{"bound_group_uuids": labGroup, "token_policies": "arvados-lab,admin,ops"}, `token_policies "admin", "ops" exceed the ceiling`},
		{"root", map[string]any{"bound_group_uuids": labGroup, "token_policies": "root"}, `"root" exceed the ceiling`},
		{"ttl above max", map[string]any{"bound_group_uuids": labGroup, "token_ttl": "2h", "token_max_ttl": "1h"}, "token_ttl"},
		{"bad token type", map[string]any{"bound_group_uuids": labGroup, "token_type": "weird"}, "token_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBackend(t)
			tb.mustWrite(t, "config", validConfig())
			resp, err := tb.request(t, logical.CreateOperation, "role/r1", tc.data)
			got := errorText(resp, err)
			if tc.wantErr == "" {
				if got != "" {
					t.Fatalf("unexpected error: %s", got)
				}
				return
			}
			if !strings.Contains(got, tc.wantErr) {
				t.Fatalf("want error containing %q, got %q", tc.wantErr, got)
			}
			if r, _ := tb.request(t, logical.ReadOperation, "role/r1", nil); r != nil {
				t.Fatal("a refused role was stored")
			}
		})
	}
}

func TestRoleCeilingMessageNamesTheCeiling(t *testing.T) {
	tb := newTestBackend(t)
	tb.mustWrite(t, "config", validConfig())
	resp, err := tb.request(t, logical.CreateOperation, "role/r1", map[string]any{"bound_group_uuids": labGroup, "token_policies": "admin"})
	got := errorText(resp, err)
	for _, want := range []string{`"admin"`, "allowed_policies is arvados-*", "ask the Vault admin"} {
		if !strings.Contains(got, want) {
			t.Errorf("message %q lacks %q", got, want)
		}
	}
}

func TestRoleCRUD(t *testing.T) {
	tb := newTestBackend(t)
	tb.mustWrite(t, "config", validConfig())
	tb.mustWrite(t, "role/ETL", map[string]any{
		"bound_group_uuids": otherGrp + "," + labGroup + "," + labGroup,
		"token_policies":    "Arvados-Lab",
		"token_ttl":         "10m",
		"token_max_ttl":     "1h",
		"token_num_uses":    5,
		"token_bound_cidrs": "10.0.0.0/8",
	})
	resp, err := tb.request(t, logical.ReadOperation, "role/etl", nil)
	if err != nil || resp == nil {
		t.Fatalf("read: %v %v", resp, err)
	}
	d := resp.Data
	if strings.Join(d["bound_group_uuids"].([]string), ",") != labGroup+","+otherGrp {
		t.Errorf("bound_group_uuids: %v", d["bound_group_uuids"])
	}
	if len(d["bound_user_uuids"].([]string)) != 0 {
		t.Errorf("bound_user_uuids: %v", d["bound_user_uuids"])
	}
	if d["require_container"] != true {
		t.Error("require_container should default to true")
	}
	if strings.Join(d["token_policies"].([]string), ",") != "arvados-lab" {
		t.Errorf("token_policies: %v", d["token_policies"])
	}
	if d["token_ttl"].(int64) != 600 || d["token_max_ttl"].(int64) != 3600 || d["token_num_uses"].(int) != 5 {
		t.Errorf("token fields: %v", d)
	}

	// Update keeps unspecified fields.
	resp = tb.mustWrite(t, "role/etl", map[string]any{"require_container": false})
	if resp == nil || len(resp.Warnings) == 0 {
		t.Error("require_container=false should warn")
	}
	r, _ := tb.b.role(t.Context(), tb.storage, "etl")
	if r.RequireContainer || len(r.BoundGroupUUIDs) != 2 || r.TokenTTL.Minutes() != 10 {
		t.Errorf("update lost fields: %+v", r)
	}

	tb.mustWrite(t, "role/other", map[string]any{"bound_user_uuids": "*"})
	list, err := tb.request(t, logical.ListOperation, "role/", nil)
	if err != nil || strings.Join(list.Data["keys"].([]string), ",") != "etl,other" {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := tb.request(t, logical.DeleteOperation, "role/etl", nil); err != nil {
		t.Fatal(err)
	}
	if resp, _ := tb.request(t, logical.ReadOperation, "role/etl", nil); resp != nil {
		t.Fatal("role still there after delete")
	}
}
