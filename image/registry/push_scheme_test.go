package registry

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// mixedListener serves TLS, and records the first line and the
// Authorization of any request that comes in plain HTTP on the same port
// (answered 500): where a push would leak its credentials and bytes.
type mixedListener struct {
	net.Listener
	cfg   *tls.Config
	mu    sync.Mutex
	plain []string
}

func (l *mixedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		br := bufio.NewReader(c)
		first, err := br.Peek(1)
		if err == nil && first[0] == 0x16 { // a TLS handshake record
			return tls.Server(&peeked{c, br}, l.cfg), nil
		}
		go l.recordPlain(c, br)
	}
}

func (l *mixedListener) recordPlain(c net.Conn, br *bufio.Reader) {
	defer c.Close()
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.plain = append(l.plain, req.Method+" "+req.URL.Path+" auth="+req.Header.Get("Authorization"))
	l.mu.Unlock()
	c.Write([]byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
}

// peeked is a conn whose first bytes were read into br.
type peeked struct {
	net.Conn
	br *bufio.Reader
}

func (p *peeked) Read(b []byte) (int, error) { return p.br.Read(b) }

// TestPushUploadLocationScheme: a TLS registry whose upload location is
// plain http:// on its own host (a proxy that terminates TLS, say) gets
// no plain-HTTP request: not the layer, not the credentials. The push
// fails, naming the location.
func TestPushUploadLocationScheme(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "dev" || p != "sekrit" {
			w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
			http.Error(w, "auth", 401)
			return
		}
		switch {
		case r.Method == "HEAD":
			http.Error(w, "no", 404)
		case r.Method == "POST":
			w.Header().Set("Location", "http://"+r.Host+"/upload/x")
			w.WriteHeader(202)
		default:
			w.WriteHeader(201)
		}
	}))
	srv.StartTLS() // makes the server's certificate
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ml := &mixedListener{Listener: ln, cfg: srv.TLS}
	go srv.Config.Serve(ml)
	defer srv.Config.Close()

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("sekrit\n"), 0o600)
	host := ln.Addr().String()
	c, err := newClient(host, "app", Registries{host: {CA: ca, Username: "dev", PasswordFile: pw}})
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("layer bytes")
	err = c.uploadBytes(context.Background(), descriptor{Digest: digestOf(blob), Size: int64(len(blob))}, blob)
	if err == nil || !strings.Contains(err.Error(), "upload location") {
		t.Errorf("upload: %v, want the http:// upload location refused", err)
	}
	ml.mu.Lock()
	defer ml.mu.Unlock()
	if len(ml.plain) > 0 {
		t.Errorf("plain-HTTP requests reached the TLS registry's port: %q", ml.plain)
	}
}
