package arvadosauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// uuidPattern matches an Arvados object uuid: a five-character cluster id, a five-character
// type infix and fifteen characters, all lowercase letters and digits.
var uuidPattern = regexp.MustCompile(`^[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}$`)

// Type infixes of the Arvados objects the plugin deals with.
const (
	infixUser          = "tpzed"
	infixGroup         = "j7d0g"
	infixContainer     = "dz642"
	infixAuthorization = "gj3su"
)

// isUUID reports whether `s` is an Arvados uuid whose type infix is `infix` (any infix when
// `infix` is empty).
func isUUID(s, infix string) bool {
	if !uuidPattern.MatchString(s) {
		return false
	}
	return infix == "" || s[6:11] == infix
}

// clusterOf returns the cluster id (the first five characters) of an Arvados uuid.
func clusterOf(uuid string) string {
	if len(uuid) < 5 {
		return ""
	}
	return uuid[:5]
}

// parsedToken is the structure of an Arvados token as presented by a client. The secret part is
// deliberately not kept: only the client needs it, to put it in the Authorization header.
type parsedToken struct {
	// AuthUUID is the api_client_authorization uuid of a "v2/" token; empty for a legacy bare
	// secret.
	AuthUUID string
	// ContainerUUID is the fourth part of a container token `v2/<auth>/<secret>/<container>`.
	ContainerUUID string
}

// maxTokenLength bounds what the plugin accepts before it talks to Arvados at all.
const maxTokenLength = 512

// tokenCharset is what Arvados tokens are made of (uuids, base-36 secrets, "v2" and slashes).
var tokenCharset = regexp.MustCompile(`^[A-Za-z0-9/_-]+$`)

// parseToken checks the shape of an Arvados token without revealing it in any error: the error
// messages only describe what is wrong.
func parseToken(token string) (parsedToken, error) {
	if token == "" {
		return parsedToken{}, errors.New("arvados_token is empty")
	}
	if len(token) > maxTokenLength {
		return parsedToken{}, errors.New("arvados_token is too long to be an Arvados token")
	}
	if !tokenCharset.MatchString(token) {
		return parsedToken{}, errors.New("arvados_token contains characters an Arvados token never has")
	}
	if !strings.HasPrefix(token, "v2/") {
		if strings.Contains(token, "/") {
			return parsedToken{}, errors.New("arvados_token is not of the form v2/<uuid>/<secret>[/<container uuid>]")
		}
		// A legacy bare secret: Arvados tells us its uuid.
		return parsedToken{}, nil
	}
	parts := strings.Split(token, "/")
	if len(parts) != 3 && len(parts) != 4 {
		return parsedToken{}, errors.New("arvados_token is not of the form v2/<uuid>/<secret>[/<container uuid>]")
	}
	if !isUUID(parts[1], infixAuthorization) {
		return parsedToken{}, errors.New("arvados_token does not start with v2/ and an api_client_authorization uuid")
	}
	if parts[2] == "" {
		return parsedToken{}, errors.New("arvados_token has an empty secret part")
	}
	p := parsedToken{AuthUUID: parts[1]}
	if len(parts) == 4 {
		if !isUUID(parts[3], infixContainer) {
			return parsedToken{}, errors.New("the fourth part of arvados_token is not a container uuid")
		}
		p.ContainerUUID = parts[3]
	}
	return p, nil
}

// apiAuthorization is the part of an api_client_authorizations record the plugin reads.
type apiAuthorization struct {
	UUID      string   `json:"uuid"`
	OwnerUUID string   `json:"owner_uuid"`
	ExpiresAt string   `json:"expires_at"`
	Scopes    []string `json:"scopes"`
}

// apiUser is the part of a users record the plugin reads.
type apiUser struct {
	UUID     string `json:"uuid"`
	Username string `json:"username"`
	IsActive bool   `json:"is_active"`
	IsAdmin  bool   `json:"is_admin"`
}

// apiContainer is the part of a containers record the plugin reads.
type apiContainer struct {
	UUID            string `json:"uuid"`
	State           string `json:"state"`
	AuthUUID        string `json:"auth_uuid"`
	RuntimeUserUUID string `json:"runtime_user_uuid"`
}

// Container states, as named by the Arvados API.
const (
	containerRunning = "Running"
)

// computedPermission is one row of the computed_permissions list: the highest permission
// `UserUUID` holds on `TargetUUID`, following membership and ownership transitively.
type computedPermission struct {
	UserUUID   string `json:"user_uuid"`
	TargetUUID string `json:"target_uuid"`
	PermLevel  string `json:"perm_level"`
}

// apiError is an answer from the Arvados API with a status other than 200.
type apiError struct {
	Status   int
	Messages []string
}

func (e *apiError) Error() string {
	if len(e.Messages) == 0 {
		return fmt.Sprintf("Arvados API answered %d", e.Status)
	}
	return fmt.Sprintf("Arvados API answered %d: %s", e.Status, strings.Join(e.Messages, "; "))
}

// unreachableError means the Arvados API could not be asked at all (connection, TLS, timeout,
// an answer that is not JSON, or a server error). Logins fail closed on it.
type unreachableError struct {
	Host   string
	Reason string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach Arvados API at %s: %s", e.Host, e.Reason)
}

// isStatus reports whether `err` is an Arvados answer with HTTP status `status`.
func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// arvadosClient talks to one Arvados API server. It is safe for concurrent use.
type arvadosClient struct {
	base *url.URL
	http *http.Client
}

// maxResponseBytes bounds how much of an Arvados answer is read.
const maxResponseBytes = 4 << 20

// newArvadosClient builds a client for the API at `host` (a URL or a bare host[:port], which
// means https). `caPEM`, when not empty, replaces the system roots; `insecure` skips
// certificate verification (tests only).
func newArvadosClient(host, caPEM string, insecure bool, timeout time.Duration) (*arvadosClient, error) {
	base, err := parseAPIHost(host)
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("ca_cert holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	if insecure {
		tlsConfig.InsecureSkipVerify = true
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &arvadosClient{
		base: base,
		http: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			// A redirect would carry the token to wherever it points; Arvados never redirects API
			// calls.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// parseAPIHost turns the configured API host into a base URL. A value without a scheme is an
// `ARVADOS_API_HOST`-style host[:port] and means https.
func parseAPIHost(host string) (*url.URL, error) {
	host = strings.TrimSpace(host)
	if host == "" {
		return nil, errors.New("arvados_api_host is empty")
	}
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("arvados_api_host is not a URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("arvados_api_host must be an http or https URL, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("arvados_api_host has no host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("arvados_api_host must not carry user info, a query or a fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// hostString is the API address as shown in messages.
func (c *arvadosClient) hostString() string {
	return c.base.Scheme + "://" + c.base.Host
}

// get calls `GET /arvados/v1/<path>?<query>` with `token` and decodes the JSON answer into
// `out`. The token only ever goes into the Authorization header.
func (c *arvadosClient) get(ctx context.Context, token, path string, query url.Values, out any) error {
	u := *c.base
	u.Path = c.base.Path + "/arvados/v1/" + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return &unreachableError{Host: c.hostString(), Reason: "cannot build request"}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return &unreachableError{Host: c.hostString(), Reason: describeTransportError(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return &unreachableError{Host: c.hostString(), Reason: "reading the answer failed"}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if err := json.Unmarshal(body, out); err != nil {
			return &unreachableError{Host: c.hostString(), Reason: fmt.Sprintf("GET %s: the answer is not the expected JSON", path)}
		}
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode < 400:
		// Server errors and unexpected redirects say nothing about the token: fail closed as
		// "unreachable" so that nobody mistakes them for a verdict.
		return &unreachableError{Host: c.hostString(), Reason: fmt.Sprintf("GET %s answered %d", path, resp.StatusCode)}
	default:
		var eb struct {
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(body, &eb)
		return &apiError{Status: resp.StatusCode, Messages: sanitizeMessages(eb.Errors, token)}
	}
}

// sanitizeMessages keeps Arvados' error messages short and makes sure that the token (or its
// secret part) never travels on inside one.
func sanitizeMessages(msgs []string, token string) []string {
	secrets := []string{token}
	if parts := strings.Split(token, "/"); len(parts) >= 3 {
		secrets = append(secrets, parts[2])
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		for _, s := range secrets {
			if s != "" {
				m = strings.ReplaceAll(m, s, "[redacted]")
			}
		}
		if len(m) > 200 {
			m = m[:200] + "..."
		}
		out = append(out, m)
	}
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// describeTransportError names the kind of failure without echoing the request (the URL holds
// no token, but the message should stay short and stable).
func describeTransportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timed out"
	}
	return err.Error()
}

// currentAuthorization returns the record of `token` itself.
func (c *arvadosClient) currentAuthorization(ctx context.Context, token string) (*apiAuthorization, error) {
	var a apiAuthorization
	if err := c.get(ctx, token, "api_client_authorizations/current", nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// currentContainer returns the container whose token `token` is, or (nil, nil) when Arvados says
// the token is not associated with a container.
func (c *arvadosClient) currentContainer(ctx context.Context, token string) (*apiContainer, error) {
	var ct apiContainer
	err := c.get(ctx, token, "containers/current", nil, &ct)
	if isStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &ct, nil
}

// user fetches a user record with `token` (the privileged token).
func (c *arvadosClient) user(ctx context.Context, token, uuid string) (*apiUser, error) {
	var u apiUser
	if err := c.get(ctx, token, "users/"+url.PathEscape(uuid), nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// container fetches a container record with `token` (the privileged token).
func (c *arvadosClient) container(ctx context.Context, token, uuid string) (*apiContainer, error) {
	var ct apiContainer
	if err := c.get(ctx, token, "containers/"+url.PathEscape(uuid), nil, &ct); err != nil {
		return nil, err
	}
	return &ct, nil
}

// memberGroups returns which of `groups` user `userUUID` is a member of, transitively, as
// Arvados computes it: the computed_permissions list (admin only) gives the highest permission a
// user holds on a target through membership links, nested role groups and ownership. Any
// level (can_read, can_write, can_manage) on a role group means membership.
func (c *arvadosClient) memberGroups(ctx context.Context, token, userUUID string, groups []string) ([]string, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	filters, err := json.Marshal([]any{
		[]any{"user_uuid", "=", userUUID},
		[]any{"target_uuid", "in", groups},
	})
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("filters", string(filters))
	q.Set("limit", fmt.Sprint(len(groups)+1))
	q.Set("count", "none")
	var list struct {
		Items []computedPermission `json:"items"`
	}
	if err := c.get(ctx, token, "computed_permissions", q, &list); err != nil {
		return nil, err
	}
	wanted := make(map[string]bool, len(groups))
	for _, g := range groups {
		wanted[g] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range list.Items {
		// Check every row again: an answer about another user or object must not count.
		if p.UserUUID != userUUID || !wanted[p.TargetUUID] || seen[p.TargetUUID] {
			continue
		}
		switch p.PermLevel {
		case "can_read", "can_write", "can_manage":
			seen[p.TargetUUID] = true
			out = append(out, p.TargetUUID)
		}
	}
	return out, nil
}
