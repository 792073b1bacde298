package registry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"berth/image/registry"
)

// TestTricklingRegistry: a registry that sends a manifest a few bytes a
// second — above the floor under which a connection is dropped — no
// longer holds a pull for as long as it likes: a manifest, like a config,
// a token or a signature, is fetched within smallFetchTimeout (1 s here,
// 2 minutes in berth) or not at all, and the error says why.
func TestTricklingRegistry(t *testing.T) {
	defer registry.SetSmallFetchTimeout(time.Second)()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", registry.MediaOCIManifest)
		w.Header().Set("Content-Length", "4000")
		for i := 0; i < 4000/40; i++ {
			if _, err := w.Write([]byte(strings.Repeat(" ", 40))); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	done := make(chan error, 1)
	go func() {
		_, err := registry.Pull(context.Background(), newCache(t), "docker://"+host+"/slow/img:v1",
			registry.Options{Registries: registry.Registries{host: {Insecure: true}}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not fetched within 1s (the registry is sending too slowly)") {
			t.Errorf("pull from a trickling registry: %v", err)
		}
	case <-time.After(time.Minute): // a hang guard, not a timing check
		t.Fatal("the pull still waits on the trickling registry after a minute")
	}
}
