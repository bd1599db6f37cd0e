package arvadosauth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/openbao/openbao/sdk/v2/logical"
)

func validConfig() map[string]any {
	return map[string]any{
		"arvados_api_host": "https://zzzzz.example.org",
		"privileged_token": "v2/zzzzz-gj3su-admintoken00001/privilegedsecretvalue",
		"cluster_id":       "zzzzz",
		"allowed_policies": "arvados-*",
	}
}

func TestConfigWriteValidation(t *testing.T) {
	cases := []struct {
		name    string
		change  map[string]any
		remove  string
		wantErr string
	}{
		{"valid", nil, "", ""},
		{"bare host", map[string]any{"arvados_api_host": "zzzzz.example.org:443"}, "", ""},
		{"no host", nil, "arvados_api_host", "arvados_api_host is required"},
		{"bad scheme", map[string]any{"arvados_api_host": "ftp://x"}, "", "http or https"},
		{"no token", nil, "privileged_token", "privileged_token is required"},
		{"malformed token", map[string]any{"privileged_token": "not a token"}, "", "does not look like an Arvados token"},
		{"no cluster", nil, "cluster_id", "cluster_id is required"},
		{"bad cluster", map[string]any{"cluster_id": "ZZZ"}, "", "cluster_id is required"},
		{"root in ceiling", map[string]any{"allowed_policies": "root,arvados-*"}, "", `must not include "root"`},
		{"bad ca", map[string]any{"ca_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "", "ca_cert"},
		{"ca not pem", map[string]any{"ca_cert": "hello"}, "", "no PEM certificate"},
		{"cache too long", map[string]any{"cache_ttl": "1h"}, "", "cache_ttl"},
		{"token cache too long", map[string]any{"token_cache_ttl": "61s"}, "", "token_cache_ttl must be between 0 and 1m0s"},
		{"token cache at most", map[string]any{"token_cache_ttl": "1m"}, "", ""},
		{"timeout zero", map[string]any{"request_timeout": 0}, "", "request_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBackend(t)
			data := validConfig()
			for k, v := range tc.change {
				data[k] = v
			}
			delete(data, tc.remove)
			resp, err := tb.request(t, logical.CreateOperation, "config", data)
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
			if strings.Contains(got, "privilegedsecretvalue") {
				t.Fatalf("error reveals the privileged token: %s", got)
			}
		})
	}
}

func TestConfigReadNeverReturnsToken(t *testing.T) {
	tb := newTestBackend(t)
	if resp, err := tb.request(t, logical.ReadOperation, "config", nil); err != nil || resp != nil {
		t.Fatalf("read before write: %v %v", resp, err)
	}
	data := validConfig()
	data["allowed_policies"] = "Lab-*, arvados-*,lab-*"
	tb.mustWrite(t, "config", data)
	resp, err := tb.request(t, logical.ReadOperation, "config", nil)
	if err != nil || resp == nil {
		t.Fatalf("read: %v %v", resp, err)
	}
	raw, _ := json.Marshal(resp.Data)
	if strings.Contains(string(raw), "privilegedsecretvalue") {
		t.Fatalf("config read returned the privileged token: %s", raw)
	}
	if _, ok := resp.Data["privileged_token"]; ok {
		t.Fatal("privileged_token field present in read")
	}
	if resp.Data["privileged_token_set"] != true {
		t.Fatal("privileged_token_set should be true")
	}
	if got := resp.Data["allowed_policies"].([]string); strings.Join(got, ",") != "arvados-*,lab-*" {
		t.Fatalf("allowed_policies not normalised: %v", got)
	}
	if resp.Data["cache_ttl"].(int64) != 5 || resp.Data["request_timeout"].(int64) != 10 ||
		resp.Data["token_cache_ttl"].(int64) != 0 {
		t.Fatalf("defaults: %v", resp.Data)
	}

	// A partial update keeps the rest, including the token.
	tb.mustWrite(t, "config", map[string]any{"cache_ttl": "2s"})
	cfg, err := tb.b.config(context.Background(), tb.storage)
	if err != nil || cfg.PrivilegedToken == "" || cfg.APIHost != "https://zzzzz.example.org" || cfg.CacheTTL.Seconds() != 2 {
		t.Fatalf("partial update lost fields: %+v %v", cfg, err)
	}

	if _, err := tb.request(t, logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if resp, _ := tb.request(t, logical.ReadOperation, "config", nil); resp != nil {
		t.Fatal("config still there after delete")
	}
}

func TestConfigWarnings(t *testing.T) {
	tb := newTestBackend(t)
	data := validConfig()
	data["arvados_api_host"] = "http://127.0.0.1:1"
	data["insecure"] = true
	data["allowed_policies"] = ""
	data["token_cache_ttl"] = "10s"
	resp := tb.mustWrite(t, "config", data)
	if resp == nil || len(resp.Warnings) != 4 {
		t.Fatalf("want 4 warnings, got %v", resp)
	}
	if !strings.Contains(strings.Join(resp.Warnings, "\n"), "token_cache_ttl is 10s") {
		t.Fatalf("no warning about token_cache_ttl: %v", resp.Warnings)
	}
}

func TestConfigIsSealWrapped(t *testing.T) {
	b := newBackend()
	found := false
	for _, p := range b.PathsSpecial.SealWrapStorage {
		if p == configStorageKey {
			found = true
		}
	}
	if !found {
		t.Fatal("config is not in SealWrapStorage")
	}
	if len(b.PathsSpecial.Unauthenticated) != 1 || b.PathsSpecial.Unauthenticated[0] != "login" {
		t.Fatalf("unauthenticated paths: %v", b.PathsSpecial.Unauthenticated)
	}
}

func TestGlobAndCeiling(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"arvados-*", "arvados-lab", true},
		{"arvados-*", "arvados-", true},
		{"arvados-*", "arvados", false},
		{"*", "anything", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"*-ro", "lab-ro", true},
		{"*-ro", "lab-rw", false},
	}
	for _, tc := range cases {
		if got := globMatch(tc.pattern, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
	if withinCeiling("root", []string{"*"}) {
		t.Error("root must never be within the ceiling")
	}
	if got := outsideCeiling([]string{"default", "arvados-a", "admin"}, []string{"arvados-*"}); strings.Join(got, ",") != "admin" {
		t.Errorf("outsideCeiling = %v", got)
	}
	if got := effectivePolicies([]string{"Arvados-A", "admin", "default"}, []string{"arvados-*"}); strings.Join(got, ",") != "arvados-a,default" {
		t.Errorf("effectivePolicies = %v", got)
	}
}
