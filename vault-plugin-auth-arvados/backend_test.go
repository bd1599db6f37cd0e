package arvadosauth

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/openbao/openbao/sdk/v2/logical"
)

func TestFactory(t *testing.T) {
	tb := newTestBackend(t)
	if tb.b.Type() != logical.TypeCredential {
		t.Fatalf("type %v", tb.b.Type())
	}
}

func TestInvalidateDropsClientAndCache(t *testing.T) {
	tb := newTestBackend(t)
	tb.mustWrite(t, "config", validConfig())
	cfg, _ := tb.b.config(context.Background(), tb.storage)
	c1, err := tb.b.arvados(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := tb.b.arvados(cfg); c2 != c1 {
		t.Fatal("the client is not reused for the same config")
	}
	tb.b.cache.put("k", []string{"v"}, time.Minute)
	tb.b.invalidate(context.Background(), "role/x")
	if _, ok := tb.b.cache.get("k"); !ok {
		t.Fatal("invalidating a role dropped the cache")
	}
	tb.b.invalidate(context.Background(), configStorageKey)
	if _, ok := tb.b.cache.get("k"); ok {
		t.Fatal("invalidating the config kept the cache")
	}
	if c3, _ := tb.b.arvados(cfg); c3 == c1 {
		t.Fatal("invalidating the config kept the client")
	}
	other := *cfg
	other.APIHost = "https://elsewhere.example.org"
	if c4, _ := tb.b.arvados(&other); c4.hostString() != "https://elsewhere.example.org" {
		t.Fatal("a changed host did not rebuild the client")
	}
}

func TestLookupCache(t *testing.T) {
	c := newLookupCache()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.put("a", 1, time.Second)
	c.put("zero", 1, 0)
	if v, ok := c.get("a"); !ok || v.(int) != 1 {
		t.Fatal("fresh entry missing")
	}
	if _, ok := c.get("zero"); ok {
		t.Fatal("ttl 0 must not cache")
	}
	now = now.Add(time.Second)
	if _, ok := c.get("a"); ok {
		t.Fatal("expired entry returned")
	}
	for i := 0; i < maxCacheEntries+10; i++ {
		c.put(fmt.Sprint(i), i, time.Minute)
	}
	if len(c.entries) > maxCacheEntries {
		t.Fatalf("cache grew to %d", len(c.entries))
	}
}

// semverPattern is Semantic Versioning 2.0 with the leading "v" OpenBao's catalog uses.
var semverPattern = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

func TestRunningVersion(t *testing.T) {
	tb := newTestBackend(t)
	v := tb.b.PluginVersion().Version
	if v == "" || v != Version() {
		t.Fatalf("the backend reports version %q, the package %q", v, Version())
	}
	// Without -ldflags (as `go test` builds it) the default is reported, and it must be a version
	// OpenBao accepts when it registers the binary.
	if v != "v0.0.0-dev" {
		t.Fatalf("default version %q", v)
	}
	if !semverPattern.MatchString(v) {
		t.Fatalf("version %q is not a semantic version with a leading v", v)
	}
}
