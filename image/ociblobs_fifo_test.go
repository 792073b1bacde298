package image

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLayoutBlobFIFO: an OCI layout whose blob is a FIFO is refused at
// once, naming the blob, not waited on until something writes to it.
func TestLayoutBlobFIFO(t *testing.T) {
	lay := filepath.Join(t.TempDir(), "lay")
	blob := strings.Repeat("0", 63) + "1"
	if err := os.MkdirAll(filepath.Join(lay, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"oci-layout": `{"imageLayoutVersion":"1.0.0"}`,
		"index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + blob + `","size":10}]}`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(lay, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(lay, "blobs", "sha256", blob), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Digest(lay, ""); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), blob+": not a regular file (a FIFO)") {
			t.Errorf("Digest: %v, want the blob refused as a FIFO", err)
		}
	case <-time.After(time.Minute): // a hang guard, not a timing check
		t.Fatal("Digest still waits on the FIFO blob")
	}
}
