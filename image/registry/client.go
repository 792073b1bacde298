package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// Settings are what berth knows about one registry host, the config's
// [registries."HOST:PORT"] table.
type Settings struct {
	// Insecure talks plain HTTP to the registry.
	Insecure bool `toml:"insecure"`
	// CA is a PEM file of the certificates that sign the registry's TLS
	// certificate, instead of the system's roots.
	CA string `toml:"ca"`
	// Username and PasswordFile are the credentials for basic auth, or
	// for the token server of the bearer flow. The file holds the
	// password; a trailing newline is dropped.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// Mirrors are other registries ("HOST[:PORT]", each with its own
	// settings when the table has them) asked first, in order, for the
	// same repository; the host itself comes last.
	Mirrors []string `toml:"mirrors"`
}

// Registries are the settings by "HOST[:PORT]". A host without an entry
// is reached over TLS checked against the system's roots, anonymously.
type Registries map[string]Settings

// Limits of files the settings name.
const (
	maxCAFile       = 1 << 20
	maxPasswordFile = 4 << 10
)

// client talks to one repository on one registry host.
type client struct {
	ep             endpoint
	repo           string
	user, password string
	auth           string // Authorization for the registry host, once known
}

// newClient makes the client of repo at host with host's settings.
func newClient(host, repo string, regs Registries) (*client, error) {
	s := regs[host]
	c := &client{ep: endpoint{host: host, insecure: s.Insecure}, repo: repo, user: s.Username}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CA != "" {
		pem, err := readSmall(s.CA, maxCAFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: ca: %w", host, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s: ca %s: no PEM certificate in it", host, s.CA)
		}
		cfg.RootCAs = pool
	}
	c.ep.tls = cfg
	if s.PasswordFile != "" {
		pw, err := readSmall(s.PasswordFile, maxPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("registry %s: password_file: %w", host, err)
		}
		c.password = strings.TrimRight(string(pw), "\r\n")
	}
	return c, nil
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: over the limit of %d bytes", path, limit)
	}
	return b, nil
}

// url is the registry's URL for a path under /v2/REPO/ (or /v2/ itself
// when path starts with "/").
func (c *client) url(path string) *url.URL {
	scheme := "https"
	if c.ep.insecure {
		scheme = "http"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/v2/" + c.repo + "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: c.ep.host}
	p, q, _ := strings.Cut(path, "?")
	u.Path, u.RawQuery = p, q
	return u
}

// do sends req, following redirects and answering one authentication
// challenge; scope is the token scope it needs ("repository:R:pull").
// A request with a body is sent once: authenticate with a bodiless
// request first.
func (c *client) do(ctx context.Context, req *request, scope string) (*response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := c.redirects(ctx, req, c.auth, c.url("/"))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.method, req.url.Redacted(), err)
		}
		if resp.status != 401 || attempt > 0 || req.body != nil {
			return resp, nil
		}
		challenge := resp.get("WWW-Authenticate")
		resp.body.Close()
		if err := c.authenticate(ctx, challenge, scope); err != nil {
			return nil, err
		}
	}
}

// redirects sends req and follows up to maxRedirects redirects.
// Authorization (auth) goes only to the scheme and host of authTo: a
// redirect elsewhere (to a storage service, say) does not carry the
// registry's credentials, nor does plain HTTP to a TLS registry's host.
func (c *client) redirects(ctx context.Context, req *request, auth string, authTo *url.URL) (*response, error) {
	r := *req
	for range maxRedirects + 1 {
		r.header = append([][2]string(nil), req.header...)
		if auth != "" && r.url.Scheme == authTo.Scheme && r.url.Host == authTo.Host {
			r.header = append(r.header, [2]string{"Authorization", auth})
		}
		resp, err := roundTrip(ctx, &r, c.ep.tls)
		if err != nil {
			return nil, err
		}
		next, err := follow(resp)
		if next == nil && err == nil {
			return resp, nil
		}
		resp.body.Close()
		if err != nil {
			return nil, err
		}
		if r.body != nil {
			return nil, fmt.Errorf("%w: a %s with a body is not resent to %s", errRedirect, r.method, next.Redacted())
		}
		if resp.status == 303 {
			r.method = "GET"
		}
		r.url = next
	}
	return nil, fmt.Errorf("%w: more than %d redirects", errRedirect, maxRedirects)
}

// get sends a bodiless request with headers under the pull scope.
func (c *client) get(ctx context.Context, method, path string, header ...[2]string) (*response, error) {
	return c.do(ctx, &request{method: method, url: c.url(path), header: header, length: -1}, c.scope("pull"))
}

// scope is the token scope of actions on the repository.
func (c *client) scope(actions string) string {
	return "repository:" + c.repo + ":" + actions
}

// statusError describes an unexpected answer, with the start of its
// body (registries explain errors in JSON there).
func statusError(resp *response, what string) error {
	b, _ := readAll(resp, 4096, what)
	msg := strings.TrimSpace(string(b))
	if msg != "" {
		msg = ": " + truncate(msg)
	}
	return fmt.Errorf("%s: the registry answered %d%s", what, resp.status, msg)
}

// smallFetchTimeout bounds the fetch of what is small: a manifest or an
// index, an image's config, a token, a signature. Below a KiB a minute a
// connection is dropped (deadlineConn); above it a registry that
// trickles could otherwise hold a pull — a boot's image, every update
// while one waits on it — for days. Layers have the floor only: they may
// be large on a slow link.
var smallFetchTimeout = 2 * time.Minute

// smallFetch is ctx bounded by smallFetchTimeout.
func smallFetch(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, smallFetchTimeout)
}

// slowFetch says so when err is ctx's deadline, which smallFetch set.
func slowFetch(ctx context.Context, what string, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: not fetched within %s (the registry is sending too slowly): %w", what, smallFetchTimeout, err)
	}
	return err
}
