package arvadosauth

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseToken(t *testing.T) {
	auth := "zzzzz-gj3su-0123456789abcde"
	ctr := "zzzzz-dz642-0123456789abcde"
	cases := []struct {
		name      string
		token     string
		wantAuth  string
		wantCtr   string
		wantError string
	}{
		{"plain v2", "v2/" + auth + "/secretpart", auth, "", ""},
		{"container", "v2/" + auth + "/secretpart/" + ctr, auth, ctr, ""},
		{"legacy bare secret", "abcdefghijklmnopqrstuvwxyz0123456789", "", "", ""},
		{"empty", "", "", "", "empty"},
		{"too long", "v2/" + auth + "/" + strings.Repeat("a", 600), "", "", "too long"},
		{"space", "v2/" + auth + "/sec ret", "", "", "characters"},
		{"newline", "v2/" + auth + "/secret\n", "", "", "characters"},
		{"five parts", "v2/" + auth + "/s/" + ctr + "/x", "", "", "form"},
		{"two parts", "v2/" + auth, "", "", "form"},
		{"bad uuid", "v2/zzzzz-tpzed-0123456789abcde/secret", "", "", "api_client_authorization"},
		{"empty secret", "v2/" + auth + "//" + ctr, "", "", "empty secret"},
		{"fourth part not a container", "v2/" + auth + "/s/zzzzz-tpzed-0123456789abcde", "", "", "container uuid"},
		{"slash without v2", "abc/def", "", "", "form"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseToken(tc.token)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("want error containing %q, got %v", tc.wantError, err)
				}
				if strings.Contains(err.Error(), "secret") && strings.Contains(err.Error(), "secretpart") {
					t.Fatalf("error reveals the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if p.AuthUUID != tc.wantAuth || p.ContainerUUID != tc.wantCtr {
				t.Fatalf("got %+v", p)
			}
		})
	}
}

func TestParseAPIHost(t *testing.T) {
	cases := []struct {
		in, want, wantErr string
	}{
		{"zzzzz.example.org", "https://zzzzz.example.org", ""},
		{"zzzzz.example.org:8443", "https://zzzzz.example.org:8443", ""},
		{"https://zzzzz.example.org/", "https://zzzzz.example.org", ""},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000", ""},
		{"", "", "empty"},
		{"ftp://x", "", "http or https"},
		{"https://user:pw@x", "", "user info"},
		{"https://x/?a=b", "", "query"},
		{"https://", "", "no host"},
	}
	for _, tc := range cases {
		u, err := parseAPIHost(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: want error %q, got %v", tc.in, tc.wantErr, err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("%q: got %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}

func TestUUIDHelpers(t *testing.T) {
	if !isUUID("zzzzz-tpzed-0123456789abcde", infixUser) || isUUID("zzzzz-tpzed-0123456789abcde", infixGroup) {
		t.Fatal("isUUID infix check")
	}
	if isUUID("ZZZZZ-tpzed-0123456789abcde", "") || isUUID("zzzzz-tpzed-0123456789abcd", "") {
		t.Fatal("isUUID accepted a malformed uuid")
	}
	if clusterOf("yyyyy-tpzed-0123456789abcde") != "yyyyy" || clusterOf("ab") != "" {
		t.Fatal("clusterOf")
	}
}

func TestClientAgainstStandin(t *testing.T) {
	s := startStandin(t, "", "")
	c, err := newArvadosClient(s.URL, "", false, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	a, err := c.currentAuthorization(ctx, containerToken(t, aliceRun1))
	if err != nil || a.OwnerUUID != alice || a.UUID != "zzzzz-gj3su-alicectrrun0001" {
		t.Fatalf("currentAuthorization: %+v %v", a, err)
	}
	u, err := c.user(ctx, adminToken(t), alice)
	if err != nil || u.UUID != alice || u.Username != "alice" || !u.IsActive {
		t.Fatalf("user: %+v %v", u, err)
	}
	ct, err := c.currentContainer(ctx, containerToken(t, aliceRun1))
	if err != nil || ct == nil || ct.UUID != aliceRun1 || ct.State != "Running" {
		t.Fatalf("currentContainer: %+v %v", ct, err)
	}
	ct, err = c.currentContainer(ctx, plainToken(t, alicePersonal))
	if err != nil || ct != nil {
		t.Fatalf("currentContainer of a plain token: %+v %v", ct, err)
	}
	_, err = c.currentAuthorization(ctx, containerToken(t, aliceDone))
	if !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("token of a Complete container: want 401, got %v", err)
	}
	noSecretIn(t, "error", err.Error())

	for _, tc := range []struct {
		user   string
		groups []string
		want   []string
	}{
		{alice, []string{labGroup, otherGrp}, []string{labGroup}},
		{dave, []string{labGroup}, []string{labGroup}}, // through analysts
		{bob, []string{labGroup}, nil},
		{bob, []string{otherGrp}, []string{otherGrp}},
		{eve, []string{labGroup, otherGrp, analysts}, nil},
	} {
		got, err := c.memberGroups(ctx, adminToken(t), tc.user, tc.groups)
		if err != nil {
			t.Fatalf("memberGroups(%s): %v", tc.user, err)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("memberGroups(%s, %v) = %v, want %v", tc.user, tc.groups, got, tc.want)
		}
	}
	if _, err := c.memberGroups(ctx, plainToken(t, alicePersonal), alice, []string{labGroup}); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("memberGroups with a non-admin token: want 403, got %v", err)
	}
}

func TestClientTLS(t *testing.T) {
	caPEM, cert, key := writeTLSFiles(t)
	s := startStandin(t, cert, key)
	ctx := context.Background()

	c, err := newArvadosClient(s.URL, caPEM, false, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.currentAuthorization(ctx, plainToken(t, alicePersonal)); err != nil {
		t.Fatalf("with ca_cert: %v", err)
	}

	c, _ = newArvadosClient(s.URL, "", false, 5*time.Second)
	_, err = c.currentAuthorization(ctx, plainToken(t, alicePersonal))
	var ue *unreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "cannot reach Arvados API at "+s.URL) {
		t.Fatalf("without the CA: want unreachable, got %v", err)
	}

	c, _ = newArvadosClient(s.URL, "", true, 5*time.Second)
	if _, err := c.currentAuthorization(ctx, plainToken(t, alicePersonal)); err != nil {
		t.Fatalf("insecure: %v", err)
	}

	if _, err := newArvadosClient(s.URL, "not a pem", false, time.Second); err == nil {
		t.Fatal("a bad CA was accepted")
	}
}

func TestClientFailures(t *testing.T) {
	ctx := context.Background()
	token := "v2/zzzzz-gj3su-0123456789abcde/topsecretvalue"

	// Nothing listens on a port we just closed.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()

	handlers := map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) },
		"not json": func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("<html>"))
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		},
		"echoes token": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(422)
			_, _ = w.Write([]byte(`{"errors":["bad token ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"]}`))
		},
		"slow": func(w http.ResponseWriter, _ *http.Request) { time.Sleep(1 * time.Second) },
	}
	cases := []struct {
		name        string
		url         string
		unreachable bool
		status      int
	}{
		{"connection refused", "http://" + addr, true, 0},
		{"500", "", true, 0},
		{"not json", "", true, 0},
		{"redirect", "", true, 0},
		{"echoes token", "", false, 422},
		{"slow", "", true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				srv := httptest.NewServer(handlers[tc.name])
				defer srv.Close()
				url = srv.URL
			}
			c, _ := newArvadosClient(url, "", false, 500*time.Millisecond)
			_, err := c.currentAuthorization(ctx, token)
			if err == nil {
				t.Fatal("no error")
			}
			var ue *unreachableError
			if tc.unreachable != errors.As(err, &ue) {
				t.Fatalf("unreachable=%v, got %T %v", tc.unreachable, err, err)
			}
			if tc.unreachable && !strings.HasPrefix(err.Error(), "cannot reach Arvados API at "+url) {
				t.Fatalf("message: %v", err)
			}
			if tc.status != 0 && !isStatus(err, tc.status) {
				t.Fatalf("want status %d, got %v", tc.status, err)
			}
			if strings.Contains(err.Error(), "topsecretvalue") {
				t.Fatalf("error reveals the token: %v", err)
			}
		})
	}
}
