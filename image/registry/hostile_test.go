package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/image"
)

// Hostile registries, in process: every size they control is bounded and
// every refusal says what was wrong.

// rawServer answers every connection with the bytes respond writes.
func rawServer(t *testing.T, respond func(c net.Conn, head string)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 8192)
				n, _ := c.Read(buf)
				respond(c, string(buf[:n]))
			}()
		}
	}()
	return l.Addr().String()
}

// fakeManifest is a valid one-layer image manifest, its config and layer.
func fakeManifest(t *testing.T) (manifest, config, layer []byte) {
	t.Helper()
	layer = []byte("not really a layer")
	config = []byte(`{"architecture":"` + goarch() + `","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digestOf(layer) + `"]}}`)
	manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		MediaOCIManifest, MediaOCIConfig, digestOf(config), len(config), "application/vnd.oci.image.layer.v1.tar", digestOf(layer), len(layer)))
	return
}

func goarch() string {
	p, _ := image.ParsePlatform("")
	return p.Architecture
}

// pullFrom pulls repo:tag from host (plain HTTP) into a new cache.
func pullFrom(t *testing.T, host string) (*image.Cache, error) {
	t.Helper()
	cache, err := image.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = Pull(ctx, cache, "docker://"+host+"/h/img:v1", Options{Registries: Registries{host: {Insecure: true}}})
	return cache, err
}

func TestHostileResponses(t *testing.T) {
	defer SetRetries(1, time.Millisecond)()
	m, cfg, layer := fakeManifest(t)
	big := strings.Repeat("x", 100<<10)
	cases := []struct {
		name    string
		respond func(c net.Conn, head string)
		want    string
	}{
		{"header line too long", func(c net.Conn, _ string) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Big: %s\r\n\r\n", big)
		}, "over its size limit"},
		{"too many headers", func(c net.Conn, _ string) {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\n")
			for i := range 200 {
				fmt.Fprintf(c, "X-%d: y\r\n", i)
			}
			fmt.Fprint(c, "\r\n")
		}, "over 128 header lines"},
		{"garbage status", func(c net.Conn, _ string) { fmt.Fprint(c, "SSH-2.0-OpenSSH\r\n\r\n") }, "malformed status line"},
		// Quoted once: each byte escaped by strconv.Quote alone, not first
		// by truncate (it read "\\x1b"), and a quote escaped too.
		{"status line with escapes", func(c net.Conn, _ string) {
			fmt.Fprint(c, "HTTP/1.1 2\x1b[2J\"0\u009b\x9b\xff OK\r\n\r\n")
		}, `malformed status line "HTTP/1.1 2\x1b[2J\"0\u009b\x9b\xff OK"`},
		{"manifest too big", func(c net.Conn, _ string) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", 5<<20)
			c.Write(make([]byte, 5<<20))
		}, "over the limit of 4194304 bytes"},
		{"endless chunked manifest", func(c net.Conn, _ string) {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			chunk := fmt.Sprintf("%x\r\n%s\r\n", len(big), big)
			for range 100 {
				if _, err := fmt.Fprint(c, chunk); err != nil {
					return
				}
			}
		}, "over the limit of 4194304 bytes"},
		{"huge chunk size", func(c net.Conn, _ string) {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n")
		}, "malformed chunk size"},
		{"bytes after a chunk's data", func(c net.Conn, _ string) {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}JUNKJUNK\r\n0\r\n\r\n")
		}, `malformed chunk: "JUNKJUNK" after its data`},
		{"short body", func(c net.Conn, _ string) {
			fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}")
		}, "short of its Content-Length"},
		{"redirect to file", func(c net.Conn, _ string) {
			fmt.Fprint(c, "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n")
		}, "only http and https are followed"},
		{"redirect loop", func(c net.Conn, head string) {
			fmt.Fprint(c, "HTTP/1.1 307 Again\r\nLocation: /v2/h/img/manifests/v1\r\nContent-Length: 0\r\n\r\n")
		}, "more than 5 redirects"},
		// A body meant for the admin's terminal: its escapes arrive as
		// text (berth pull's stderr, berth ps, the console show it), and
		// the cut falls between characters, not inside "é".
		{"error body with terminal escapes", func(c net.Conn, _ string) {
			body := "\x1b]0;TITLE\x07\x1b[2J\r\nberth: forged\x9b\xff" + strings.Repeat("a", 48) + "ézz"
			fmt.Fprintf(c, "HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}, `the registry answered 404: \x1b]0;TITLE\x07\x1b[2J\x0d\x0aberth: forged\x9b\xff` + strings.Repeat("a", 48) + "é…"},
		{"layer with the wrong bytes", serveImage(m, cfg, []byte("not really a layeR")), "digest mismatch"},
		{"layer too long", serveImage(m, cfg, append(append([]byte{}, layer...), "and more"...)), "longer than the"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := rawServer(t, c.respond)
			cache, err := pullFrom(t, host)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("pull: %v; want an error with %q", err, c.want)
			}
			if e, _ := filepath.Glob(filepath.Join(cache.Root, "sha256-*")); len(e) != 0 {
				t.Errorf("cache entries after a refused pull: %v", e)
			}
		})
	}
}

// serveImage serves manifest m, config cfg and layer bytes for any tag.
func serveImage(m, cfg, layer []byte) func(c net.Conn, head string) {
	return func(c net.Conn, head string) {
		body, ctype := m, MediaOCIManifest
		switch {
		case strings.Contains(head, "/blobs/"+digestOf(cfg)):
			body, ctype = cfg, "application/octet-stream"
		case strings.Contains(head, "/blobs/"):
			body, ctype = layer, "application/octet-stream"
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ctype, len(body))
		c.Write(body)
	}
}

// TestBearerFlow: a registry that asks for a token gets one from the
// realm, with the configured credentials; the token goes to the registry
// only, never along a redirect to another host.
func TestBearerFlow(t *testing.T) {
	m, cfg, _ := fakeManifest(t)
	var sawAuthAtStorage, tokenAuth string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuthAtStorage = r.Header.Get("Authorization")
		w.Write(cfg)
	}))
	defer storage.Close()
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenAuth = r.Header.Get("Authorization")
		u, p, ok := r.BasicAuth()
		if !ok || u != "device" || p != "pw" || r.URL.Query().Get("scope") != "repository:h/img:pull" || r.URL.Query().Get("service") != "reg" {
			http.Error(w, "denied", 401)
			return
		}
		fmt.Fprint(w, `{"token":"tok-123"}`)
	}))
	defer tokens.Close()
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-123" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="reg",scope="repository:h/img:pull"`, tokens.URL))
			http.Error(w, "auth", 401)
			return
		}
		switch {
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", MediaOCIManifest)
			w.Write(m)
		case strings.Contains(r.URL.Path, "/blobs/"+digestOf(cfg)):
			http.Redirect(w, r, storage.URL+"/cfg", 307)
		default:
			http.Error(w, "no", 404)
		}
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("pw\n"), 0o600)
	c, err := newClient(host, "h/img", Registries{host: {Insecure: true, Username: "device", PasswordFile: pw}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := c.fetchManifest(ctx, "v1", "")
	if err != nil {
		t.Fatal(err)
	}
	if f.digest != digestOf(m) || tokenAuth == "" {
		t.Errorf("manifest %s (want %s), token request authorization %q", f.digest, digestOf(m), tokenAuth)
	}
	d := descriptor{Digest: digestOf(cfg), Size: int64(len(cfg))}
	if err := c.download(ctx, d, filepath.Join(dir, "cfg"), func(int64) {}); err != nil {
		t.Fatal(err)
	}
	if sawAuthAtStorage != "" {
		t.Errorf("the redirect to another host carried Authorization %q", sawAuthAtStorage)
	}
	// Without credentials the token server refuses, and the error says so.
	c, _ = newClient(host, "h/img", Registries{host: {Insecure: true}})
	if _, err := c.fetchManifest(ctx, "v1", ""); err == nil || !strings.Contains(err.Error(), "token server") {
		t.Errorf("anonymous: %v, want the token server's refusal", err)
	}
}

// TestBasicAuthMissing: a registry asking for basic auth with no
// credentials configured is an error naming the table to set.
func TestBasicAuthMissing(t *testing.T) {
	host := rawServer(t, func(c net.Conn, _ string) {
		fmt.Fprint(c, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\n\r\n")
	})
	_, err := pullFrom(t, host)
	if err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("pull: %v, want a hint at username and password_file", err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		t.Errorf("a network error: %v", err)
	}
}

// TestSlowFloor: a registry that sends a byte at a time, under the slow
// floor, is dropped with the reason, whatever each read's timeout; one
// that answers late — within a window, as each read may wait ioTimeout,
// the window's length — but then at speed is not.
func TestSlowFloor(t *testing.T) {
	defer SetRetries(1, time.Millisecond)()
	oldWindow, oldBytes := slowWindow, slowBytes
	// A window of seconds, so that "late" keeps a second's margin on a
	// loaded machine (at 300 ms its margin was 60 ms: flaky-test audit).
	slowWindow, slowBytes = 2*time.Second, 1<<10
	defer func() { slowWindow, slowBytes = oldWindow, oldBytes }()
	m, cfg, layer := fakeManifest(t)
	trickle := func(c net.Conn, _ string) {
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", MediaOCIManifest, len(m))
		for _, b := range m {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := pullFrom(t, rawServer(t, trickle)); !errors.Is(err, errTooSlow) || !strings.Contains(err.Error(), "under the floor of 1024 bytes a 2s") {
		t.Errorf("pull from a trickling registry: %v, want %v", err, errTooSlow)
	}
	late := func(c net.Conn, head string) {
		time.Sleep(slowWindow / 2)
		serveImage(m, cfg, layer)(c, head)
	}
	// Its layer is no tar: the pull gets as far as the unpack.
	if _, err := pullFrom(t, rawServer(t, late)); errors.Is(err, errTooSlow) || err == nil || !strings.Contains(err.Error(), "unpack") {
		t.Errorf("pull from a registry that answers late, then at speed: %v, want it to reach the unpack", err)
	}
}
