package arvadosauth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/openbao/openbao/sdk/v2/logical"
)

// Paths of the stand-in and its fixtures, relative to this module.
var (
	standinScript = filepath.Join("..", "test", "arvados-standin", "standin.py")
	fixturesFile  = filepath.Join("..", "test", "arvados-standin", "fixtures.json")
)

// fixtures is the parsed fixture file; tests build tokens from it.
var fixtures struct {
	ClusterID string `json:"cluster_id"`
	Tokens    []struct {
		UUID   string `json:"uuid"`
		Secret string `json:"secret"`
	} `json:"tokens"`
	Containers []struct {
		UUID     string `json:"uuid"`
		AuthUUID string `json:"auth_uuid"`
	} `json:"containers"`
	Credentials []struct {
		Secret string `json:"secret"`
	} `json:"credentials"`
}

// Well-known fixture objects.
const (
	alice     = "zzzzz-tpzed-aliceinlab00001"
	bob       = "zzzzz-tpzed-bobinother00001"
	carol     = "zzzzz-tpzed-carolinactive01"
	dave      = "zzzzz-tpzed-daveanalyst0001"
	eve       = "zzzzz-tpzed-evenomember0001"
	labGroup  = "zzzzz-j7d0g-labgroup0000001"
	otherGrp  = "zzzzz-j7d0g-othergroup00001"
	analysts  = "zzzzz-j7d0g-analysts0000001"
	aliceRun1 = "zzzzz-dz642-alicerunning001"
	aliceRun2 = "zzzzz-dz642-alicerunning002"
	aliceDone = "zzzzz-dz642-alicecomplete01"
	aliceLock = "zzzzz-dz642-alicelocked0001"
	bobRun    = "zzzzz-dz642-bobrunning00001"
	carolRun  = "zzzzz-dz642-carolrunning001"
	daveRun   = "zzzzz-dz642-daverunning0001"
	eveRun    = "zzzzz-dz642-everunning00001"

	adminTokenUUID   = "zzzzz-gj3su-admintoken00001"
	alicePersonal    = "zzzzz-gj3su-alicetoken00001"
	aliceScoped      = "zzzzz-gj3su-alicescoped0001"
	aliceExpired     = "zzzzz-gj3su-aliceexpired001"
	leakMarker       = "canary"
	standinStartWait = 20 * time.Second
)

var havePython bool

func TestMain(m *testing.M) {
	raw, err := os.ReadFile(fixturesFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading fixtures:", err)
		os.Exit(1)
	}
	if err := json.Unmarshal(raw, &fixtures); err != nil {
		fmt.Fprintln(os.Stderr, "parsing fixtures:", err)
		os.Exit(1)
	}
	_, err = exec.LookPath("python3")
	havePython = err == nil
	os.Exit(m.Run())
}

// secretOf returns the secret of fixture token `uuid`.
func secretOf(t *testing.T, uuid string) string {
	t.Helper()
	for _, tok := range fixtures.Tokens {
		if tok.UUID == uuid {
			return tok.Secret
		}
	}
	t.Fatalf("no fixture token %s", uuid)
	return ""
}

// plainToken returns "v2/<uuid>/<secret>" of fixture token `uuid`.
func plainToken(t *testing.T, uuid string) string {
	return "v2/" + uuid + "/" + secretOf(t, uuid)
}

// containerToken returns the four-part token of fixture container `ctr`.
func containerToken(t *testing.T, ctr string) string {
	t.Helper()
	for _, c := range fixtures.Containers {
		if c.UUID == ctr {
			return plainToken(t, c.AuthUUID) + "/" + ctr
		}
	}
	t.Fatalf("no fixture container %s", ctr)
	return ""
}

func adminToken(t *testing.T) string { return plainToken(t, adminTokenUUID) }

// standin is a running test/arvados-standin/standin.py.
type standin struct {
	URL      string
	cmd      *exec.Cmd
	stderr   *syncBuffer
	stopOnce sync.Once
}

// stop kills the stand-in and waits for it and its output to finish.
func (s *standin) stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
}

// startStandin runs the stand-in with the fixture file on a free port, over TLS when
// `certFile` and `keyFile` are given, and stops it when the test ends.
func startStandin(t *testing.T, certFile, keyFile string) *standin {
	t.Helper()
	if !havePython {
		t.Skip("python3 not found: the Arvados stand-in cannot run")
	}
	dir := t.TempDir()
	portFile := filepath.Join(dir, "port")
	args := []string{standinScript, "--fixtures", fixturesFile, "--port", "0", "--port-file", portFile}
	scheme := "http"
	if certFile != "" {
		args = append(args, "--tls-cert", certFile, "--tls-key", keyFile)
		scheme = "https"
	}
	cmd := exec.Command("python3", args...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the stand-in: %v", err)
	}
	s := &standin{cmd: cmd, stderr: stderr}
	t.Cleanup(func() {
		s.stop()
		if strings.Contains(stderr.String(), leakMarker) {
			t.Errorf("the stand-in's stderr contains a secret")
		}
	})
	deadline := time.Now().Add(standinStartWait)
	for {
		raw, err := os.ReadFile(portFile)
		if err == nil {
			port, err := strconv.Atoi(strings.TrimSpace(string(raw)))
			if err != nil {
				t.Fatalf("bad port file: %q", raw)
			}
			s.URL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stand-in did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// control calls the stand-in's control API (always over plain HTTP is not possible with TLS, so
// the client skips verification for control calls only).
func (s *standin) control(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+"/_control/"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := insecureClient.Do(req)
	if err != nil {
		t.Fatalf("control %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("control %s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

// requestCount returns how many API requests the stand-in has answered for `path`.
func (s *standin) requestCount(t *testing.T, path string) int {
	t.Helper()
	log := s.control(t, "GET", "log", nil)
	n := 0
	for _, e := range log["items"].([]any) {
		if e.(map[string]any)["path"] == path {
			n++
		}
	}
	return n
}

var insecureClient = newInsecureClient()

func newInsecureClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.InsecureSkipVerify = true
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// writeTLSFiles creates a CA and a server certificate for 127.0.0.1 and returns the CA PEM and
// the paths of the server certificate and key.
func writeTLSFiles(t *testing.T) (caPEM, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "stand-in test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	certFile = filepath.Join(dir, "server.pem")
	keyFile = filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caPEM, certFile, keyFile
}

// testBackend is a backend with in-memory storage and a log buffer.
type testBackend struct {
	b       *backend
	storage logical.Storage
	logs    *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// newTestBackend returns a backend with in-memory storage whose log goes to a buffer; at the end
// of the test the log is checked for secrets.
func newTestBackend(t *testing.T) *testBackend {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	logs := &syncBuffer{}
	conf.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { noSecretIn(t, "the plugin log", logs.String()) })
	return &testBackend{b: raw.(*backend), storage: conf.StorageView, logs: logs}
}

func (tb *testBackend) request(t *testing.T, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	t.Helper()
	return tb.b.HandleRequest(context.Background(), &logical.Request{
		Operation:  op,
		Path:       path,
		Data:       data,
		Storage:    tb.storage,
		Connection: &logical.Connection{RemoteAddr: "127.0.0.1"},
	})
}

// mustWrite writes `data` at `path` and fails the test on any error.
func (tb *testBackend) mustWrite(t *testing.T, path string, data map[string]any) *logical.Response {
	t.Helper()
	resp, err := tb.request(t, logical.UpdateOperation, path, data)
	if err != nil || resp.IsError() {
		t.Fatalf("write %s: err=%v resp=%v", path, err, resp)
	}
	return resp
}

// configure writes a working config for stand-in `s` with the given extra fields.
func (tb *testBackend) configure(t *testing.T, s *standin, extra map[string]any) {
	t.Helper()
	data := map[string]any{
		"arvados_api_host": s.URL,
		"privileged_token": adminToken(t),
		"cluster_id":       "zzzzz",
		"allowed_policies": "arvados-*,lab-*",
		"cache_ttl":        0,
	}
	for k, v := range extra {
		data[k] = v
	}
	tb.mustWrite(t, "config", data)
}

func (tb *testBackend) login(t *testing.T, role, token string) (*logical.Response, error) {
	t.Helper()
	return tb.request(t, logical.UpdateOperation, "login", map[string]any{"role": role, "arvados_token": token})
}

// renew asks the backend to renew the auth of a login response, the way Vault core does.
func (tb *testBackend) renew(t *testing.T, auth *logical.Auth) (*logical.Response, error) {
	t.Helper()
	a := *auth
	a.TokenPolicies = append([]string(nil), auth.Policies...)
	a.InternalData = map[string]any{}
	for k, v := range auth.InternalData {
		a.InternalData[k] = v
	}
	return tb.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation,
		Path:      "login",
		Storage:   tb.storage,
		Auth:      &a,
	})
}

// errorText returns the error of a response or call as text, "" when neither failed.
func errorText(resp *logical.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	if resp != nil && resp.IsError() {
		return resp.Error().Error()
	}
	return ""
}

// noSecretIn fails the test when `text` holds any fixture secret.
func noSecretIn(t *testing.T, what, text string) {
	t.Helper()
	for _, tok := range fixtures.Tokens {
		if strings.Contains(text, tok.Secret) {
			t.Errorf("%s contains the secret of token %s", what, tok.UUID)
		}
	}
	if strings.Contains(text, leakMarker) {
		t.Errorf("%s contains a canary secret: %s", what, text)
	}
}
