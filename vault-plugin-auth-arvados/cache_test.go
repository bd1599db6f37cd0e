package arvadosauth

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// apiCalls returns the Arvados API paths the stand-in answered, in order, from entry `from` of
// its request log on.
func (s *standin) apiCalls(t *testing.T, from int) []string {
	t.Helper()
	var out []string
	for i, e := range s.control(t, "GET", "log", nil)["items"].([]any) {
		if p := e.(map[string]any)["path"].(string); i >= from && strings.HasPrefix(p, "/arvados/v1/") {
			out = append(out, strings.TrimPrefix(p, "/arvados/v1/"))
		}
	}
	return out
}

func (s *standin) logLength(t *testing.T) int {
	t.Helper()
	return len(s.control(t, "GET", "log", nil)["items"].([]any))
}

// mustLogin logs in and fails the test unless the login succeeds.
func (tb *testBackend) mustLogin(t *testing.T, role, token string) {
	t.Helper()
	if resp, err := tb.login(t, role, token); errorText(resp, err) != "" || resp.Auth == nil {
		t.Fatalf("login with role %s: %s", role, errorText(resp, err))
	}
}

// callsOf logs in with each token and returns the Arvados calls the logins made.
func callsOf(t *testing.T, s *standin, tb *testBackend, tokens ...string) []string {
	t.Helper()
	from := s.logLength(t)
	for _, tok := range tokens {
		tb.mustLogin(t, "lab", tok)
	}
	return s.apiCalls(t, from)
}

func TestFetchSharesOneRequestAndKeepsOnlySuccess(t *testing.T) {
	c := newLookupCache()
	var calls atomic.Int32
	release := make(chan struct{})
	ask := func(context.Context) (any, error) {
		calls.Add(1)
		<-release
		return "answer", nil
	}
	var wg sync.WaitGroup
	results := make([]any, 8)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], _ = c.fetch(context.Background(), "k", time.Minute, ask, nil)
		}(i)
	}
	// Let the callers pile up on the one request, then answer it.
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("8 concurrent callers made %d requests, want 1", n)
	}
	for i, r := range results {
		if r != "answer" {
			t.Fatalf("caller %d got %v", i, r)
		}
	}

	// An error reaches the caller and is not kept: the next caller asks again.
	failing := func(context.Context) (any, error) { calls.Add(1); return nil, errors.New("down") }
	if _, err := c.fetch(context.Background(), "e", time.Minute, failing, nil); err == nil {
		t.Fatal("the error was lost")
	}
	if _, err := c.fetch(context.Background(), "e", time.Minute, failing, nil); err == nil || calls.Load() != 3 {
		t.Fatalf("an error was cached (calls %d)", calls.Load())
	}
	// An answer `keep` rejects is returned but not kept.
	n := 0
	refusedAnswer := func(context.Context) (any, error) { n++; return n, nil }
	never := func(any) bool { return false }
	c.fetch(context.Background(), "r", time.Minute, refusedAnswer, never)
	if v, _ := c.fetch(context.Background(), "r", time.Minute, refusedAnswer, never); v != 2 {
		t.Fatalf("an answer keep rejected was reused: %v", v)
	}
	// A ttl of 0 neither keeps nor shares.
	c.fetch(context.Background(), "z", 0, refusedAnswer, nil)
	if v, _ := c.fetch(context.Background(), "z", 0, refusedAnswer, nil); v != 4 {
		t.Fatalf("ttl 0 reused an answer: %v", v)
	}
}

func TestFetchForgetsAnswersAcrossAClear(t *testing.T) {
	c := newLookupCache()
	started, release := make(chan struct{}), make(chan struct{})
	go func() { <-started; c.clear(); close(release) }()
	slow := func(context.Context) (any, error) { close(started); <-release; return "old", nil }
	if v, err := c.fetch(context.Background(), "k", time.Minute, slow, nil); v != "old" || err != nil {
		t.Fatalf("got %v %v", v, err)
	}
	if _, ok := c.get("k"); ok {
		t.Fatal("an answer asked before a config change was kept after it")
	}
}

func TestTokenCacheKeyHidesTheToken(t *testing.T) {
	c, other := newLookupCache(), newLookupCache()
	tok := "v2/zzzzz-gj3su-0123456789abcde/canarysecret0123456789"
	k := c.tokenKeyFor(tok)
	if strings.Contains(k, "canarysecret") || strings.Contains(k, "zzzzz-gj3su") {
		t.Fatalf("the cache key shows the token: %s", k)
	}
	if k != c.tokenKeyFor(tok) || k == c.tokenKeyFor(tok+"x") || k == other.tokenKeyFor(tok) {
		t.Fatal("token keys are not a keyed function of the whole token")
	}
}

// TestCallsPerLogin counts the Arvados requests of a login with every cache setting: the figures
// the README's "Arvados calls per login" gives.
func TestCallsPerLogin(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, map[string]any{"cache_ttl": 0, "token_cache_ttl": 0})
	setupRoles(t, tb)
	run1, run2 := containerToken(t, aliceRun1), containerToken(t, aliceRun2)
	full := []string{"api_client_authorizations/current", "computed_permissions", "containers/current", "users/" + alice}

	calls := callsOf(t, s, tb, run1, run2, run1, run2)
	if len(calls) != 16 {
		t.Fatalf("caches off: 4 logins made %d calls, want 16: %v", len(calls), calls)
	}
	first := append([]string(nil), calls[:4]...)
	sort.Strings(first)
	if strings.Join(first, " ") != strings.Join(full, " ") {
		t.Fatalf("one uncached login asked %v, want %v", first, full)
	}

	// cache_ttl: the user record and the membership are asked once for all of alice's containers;
	// each login still asks about its own token.
	tb.mustWrite(t, "config", map[string]any{"cache_ttl": 60})
	calls = callsOf(t, s, tb, run1, run2, run1, run2)
	if len(calls) != 4+3*2 {
		t.Fatalf("cache_ttl 60: 4 logins made %d calls, want 10: %v", len(calls), calls)
	}
	for _, c := range calls[4:] {
		if c != "api_client_authorizations/current" && c != "containers/current" {
			t.Fatalf("a cached login asked %s", c)
		}
	}

	// token_cache_ttl: logins with the same token within it ask nothing.
	tb.mustWrite(t, "config", map[string]any{"token_cache_ttl": 60})
	calls = callsOf(t, s, tb, run1, run1, run1, run1)
	if len(calls) != 4 {
		t.Fatalf("token_cache_ttl 60: 4 logins with one token made %d calls, want 4 (the first login's): %v", len(calls), calls)
	}

	// Renewal asks afresh whatever the caches hold.
	resp, _ := tb.login(t, "lab", run1)
	from := s.logLength(t)
	if r, err := tb.renew(t, resp.Auth); errorText(r, err) != "" {
		t.Fatal(errorText(r, err))
	}
	if calls := s.apiCalls(t, from); len(calls) != 3 {
		t.Fatalf("renewal made %d calls, want 3 (user, container, membership): %v", len(calls), calls)
	}
}

func TestConcurrentColdLoginsShareThePrivilegedRequests(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, map[string]any{"cache_ttl": 60})
	setupRoles(t, tb)
	from := s.logLength(t)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := 0; i < 8; i++ {
		tok := containerToken(t, []string{aliceRun1, aliceRun2}[i%2])
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := tb.login(t, "lab", tok); errorText(resp, err) != "" {
				errs <- errorText(resp, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	count := map[string]int{}
	for _, c := range s.apiCalls(t, from) {
		count[c]++
	}
	if count["users/"+alice] != 1 || count["computed_permissions"] != 1 {
		t.Fatalf("8 concurrent logins of one user asked the user %d and the membership %d times, want 1 each",
			count["users/"+alice], count["computed_permissions"])
	}
	if count["api_client_authorizations/current"] != 8 {
		t.Fatalf("the tokens were checked %d times, want 8", count["api_client_authorizations/current"])
	}
}

// TestCacheBounds: a finished container and a deactivated user are refused at login once the
// cached answers are older than their ttl, and at renewal at once.
func TestCacheBounds(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, map[string]any{"cache_ttl": 30, "token_cache_ttl": 20})
	setupRoles(t, tb)
	now := time.Now()
	tb.b.cache.now = func() time.Time { return now }
	run2 := containerToken(t, aliceRun2)
	resp, _ := tb.login(t, "lab", run2)
	if resp == nil || resp.Auth == nil {
		t.Fatal("the first login failed")
	}

	s.control(t, "POST", "containers/"+aliceRun2, map[string]any{"state": "Complete"})
	if r, err := tb.renew(t, resp.Auth); !strings.Contains(errorText(r, err), "not Running") {
		t.Fatalf("renewal of a finished container's login: %q", errorText(r, err))
	}
	// Within token_cache_ttl the same token still logs in: the documented bound.
	now = now.Add(19 * time.Second)
	tb.mustLogin(t, "lab", run2)
	now = now.Add(time.Second)
	if r, err := tb.login(t, "lab", run2); !strings.Contains(errorText(r, err), "Arvados rejected the token (401)") {
		t.Fatalf("a finished container's token logged in after token_cache_ttl: %q", errorText(r, err))
	}
	s.control(t, "POST", "containers/"+aliceRun2, map[string]any{"state": "Running"})

	// A deactivated user: the user record is reused for cache_ttl (30 s) from when it was asked.
	// (A config write empties the caches, so that the record is asked at `now`.)
	tb.mustWrite(t, "config", map[string]any{"cache_ttl": 30})
	run1 := containerToken(t, aliceRun1)
	tb.mustLogin(t, "lab", run1)
	s.control(t, "POST", "users/"+alice, map[string]any{"is_active": false})
	now = now.Add(29 * time.Second)
	tb.mustLogin(t, "lab", containerToken(t, aliceRun2))
	now = now.Add(time.Second)
	if r, err := tb.login(t, "lab", containerToken(t, aliceRun2)); !strings.Contains(errorText(r, err), "is not active") {
		t.Fatalf("a deactivated user logged in after cache_ttl: %q", errorText(r, err))
	}
}

func TestConfigWriteEmptiesTheCaches(t *testing.T) {
	s := startStandin(t, "", "")
	tb := newTestBackend(t)
	tb.configure(t, s, map[string]any{"cache_ttl": 60, "token_cache_ttl": 60})
	setupRoles(t, tb)
	run1 := containerToken(t, aliceRun1)
	if calls := callsOf(t, s, tb, run1, run1); len(calls) != 4 {
		t.Fatalf("two logins with one token made %d calls, want 4", len(calls))
	}
	tb.mustWrite(t, "config", map[string]any{"request_timeout": 9})
	if calls := callsOf(t, s, tb, run1); len(calls) != 4 {
		t.Fatalf("after a config write, a login made %d calls, want 4 (nothing cached)", len(calls))
	}
	tb.b.invalidate(context.Background(), configStorageKey)
	if calls := callsOf(t, s, tb, run1); len(calls) != 4 {
		t.Fatalf("after another node changed the config, a login made %d calls, want 4", len(calls))
	}
}
