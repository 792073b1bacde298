package image

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignVerify signs an image and checks the signature holds for that
// image and key only, and that OpenSSL agrees on the formats.
func TestSignVerify(t *testing.T) {
	_, img := packTree(t)
	dir := t.TempDir()
	key, pub, err := Keygen(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(key); st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", st.Mode())
	}
	if _, _, err := Keygen(filepath.Join(dir, "k")); err == nil {
		t.Error("keygen overwrote a key")
	}
	_, otherPub, _ := Keygen(filepath.Join(dir, "other"))
	d, err := Sign(img, key, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if d != fileDigest(t, img) {
		t.Errorf("signed %s, image is %s", d, fileDigest(t, img))
	}
	changed := filepath.Join(dir, "changed")
	b, _ := os.ReadFile(img)
	b[len(b)/2] ^= 1
	os.WriteFile(changed, b, 0o644)
	garbled := filepath.Join(dir, "garbled.sig")
	sig, _ := os.ReadFile(img + ".sig")
	lines := strings.Split(strings.TrimSpace(string(sig)), "\n")
	raw, _ := base64.StdEncoding.DecodeString(lines[1])
	raw[10] ^= 1
	os.WriteFile(garbled, []byte(lines[0]+"\n"+base64.StdEncoding.EncodeToString(raw)+"\n"), 0o644)
	raw[10] ^= 1
	cases := []struct {
		name, src, pub, sig string
		ok                  bool
	}{
		{"good", img, pub, "", true},
		{"other key", img, otherPub, "", false},
		{"changed image, its signature", changed, pub, img + ".sig", false},
		{"no signature", changed, pub, "", false},
		{"garbled signature", img, pub, garbled, false},
		{"private key as public", img, key, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(c.src, c.pub, c.sig, "")
			if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrSignature)) {
				t.Fatalf("verify: %v, want ok=%v", err, c.ok)
			}
		})
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("no openssl to cross-check: make host-deps installs it")
	}
	os.WriteFile(filepath.Join(dir, "msg"), []byte(lines[0]), 0o644)
	os.WriteFile(filepath.Join(dir, "sig.bin"), raw, 0o644)
	run(t, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", filepath.Join(dir, "msg"), "-sigfile", filepath.Join(dir, "sig.bin"))
	run(t, "openssl", "pkey", "-in", key, "-noout")
}

// TestDigest checks a file's digest is sha256sum's and Unpack enforces an
// expected one before writing.
func TestDigest(t *testing.T) {
	_, img := packTree(t)
	d, err := Digest(img, "")
	if err != nil || d != fileDigest(t, img) {
		t.Fatalf("digest %s %v, want %s", d, err, fileDigest(t, img))
	}
	out, err := exec.Command("sha256sum", img).Output()
	if err != nil || !strings.HasPrefix(string(out), d[7:]) {
		t.Errorf("sha256sum says %s", out)
	}
	for _, bad := range []string{"sha256:" + strings.Repeat("0", 64), "md5:abc", "sha256:XYZ"} {
		dest := filepath.Join(t.TempDir(), "dest")
		if _, err := Unpack(img, dest, UnpackOptions{Digest: bad}); err == nil {
			t.Errorf("unpack with digest %s succeeded", bad)
		}
		if _, err := os.Stat(dest); err == nil {
			t.Errorf("dest created despite digest %s", bad)
		}
	}
	if _, err := Unpack(img, filepath.Join(t.TempDir(), "dest"), UnpackOptions{Digest: d}); err != nil {
		t.Error(err)
	}
}

// TestSignatureFileHostile: a signature file that is not a small regular
// file is refused without being read to its end or blocked on.
func TestSignatureFileHostile(t *testing.T) {
	dir := t.TempDir()
	_, pub, err := Keygen(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	fifo, zero, big := filepath.Join(dir, "fifo.sig"), filepath.Join(dir, "zero.sig"), filepath.Join(dir, "big.sig")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 1<<30); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	for _, sig := range []string{fifo, zero, big} {
		done := make(chan error, 1)
		go func() { done <- VerifyDigest(digest, pub, sig) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "no signature") {
				t.Errorf("%s: %v", sig, err)
			}
		case <-time.After(10 * time.Second): // a hang guard, not a timing check
			t.Fatalf("%s: blocked", sig)
		}
	}
}
