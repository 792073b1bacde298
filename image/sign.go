package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth/internal/filekind"
)

// Signatures. berth signs an image's digest (see Digest) with ed25519.
//
// Keys are PEM files that OpenSSL reads too: NAME.key holds the private
// key as PKCS#8 ("-----BEGIN PRIVATE KEY-----", mode 0600), NAME.pub the
// public key as PKIX ("-----BEGIN PUBLIC KEY-----"); `berth image keygen
// -o NAME` writes both.
//
// A signature file (by default the image's path with ".sig" appended) is
// two lines of text:
//
//	berth-image-v1 sha256:<64 hex digits>
//	<the 64-byte ed25519 signature, standard base64>
//
// The signed message is the first line without its newline: the prefix
// keeps a berth signature from meaning anything else, and the digest in
// clear lets a mismatch say which image the signature was for. OpenSSL
// checks one too: write the first line without its newline to MSG and the
// decoded second line to SIG.bin, then `openssl pkeyutl -verify -pubin
// -inkey NAME.pub -rawin -in MSG -sigfile SIG.bin`.
const sigContext = "berth-image-v1 "

// DER prefixes of ed25519 keys (RFC 8410): the 32-byte key follows.
var (
	pkcs8Prefix = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}
	pkixPrefix  = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}
)

// ErrSignature is wrapped by every failed signature check.
var ErrSignature = errors.New("signature check failed")

// Keygen writes a new key pair to name+".key" and name+".pub"; it refuses
// to overwrite either.
func Keygen(name string) (keyPath, pubPath string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	keyPath, pubPath = name+".key", name+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("keygen: %s exists", p)
		}
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: append(append([]byte{}, pkcs8Prefix...), priv.Seed()...)})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: append(append([]byte{}, pkixPrefix...), pub...)})
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	if err := writeFileAtomic(pubPath, pubPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	return keyPath, pubPath, nil
}

// readKey reads a PEM key file of the given type and returns the key bytes
// after prefix.
func readKey(path, typ string, prefix []byte) ([]byte, error) {
	b, err := readSmallFile(path, maxSignature, true) // a PEM key is shorter
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != typ || len(block.Bytes) != len(prefix)+32 || !bytes.HasPrefix(block.Bytes, prefix) {
		return nil, fmt.Errorf("%s: not an ed25519 %s in PEM", path, strings.ToLower(typ))
	}
	return block.Bytes[len(prefix):], nil
}

// sigPath is the signature file of an image: explicit, or beside it.
func sigPath(image, explicit string) string {
	if explicit != "" {
		return explicit
	}
	return strings.TrimSuffix(image, "/") + ".sig"
}

// Sign signs the digest of the image at src (see Digest; platform picks in
// an OCI index) with the private key at keyPath and writes the signature to
// sig ("" means beside the image). It returns the digest signed.
func Sign(src, keyPath, sig, platform string) (string, error) {
	seed, err := readKey(keyPath, "PRIVATE KEY", pkcs8Prefix)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	path, _ := splitRef(src)
	if err := filekind.CheckReplace(sigPath(path, sig)); err != nil { // before the digest
		return "", fmt.Errorf("sign: %w", err)
	}
	d, err := Digest(src, platform)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	msg := sigContext + d
	s := ed25519.Sign(ed25519.NewKeyFromSeed(seed), []byte(msg))
	out := msg + "\n" + base64.StdEncoding.EncodeToString(s) + "\n"
	if err := writeFileAtomic(sigPath(path, sig), []byte(out), 0o644); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return d, nil
}

// Verify checks the signature of the image at src against the public key
// at pubPath and returns the image's digest.
func Verify(src, pubPath, sig, platform string) (string, error) {
	d, err := Digest(src, platform)
	if err != nil {
		return "", fmt.Errorf("verify: %w", err)
	}
	path, _ := splitRef(src)
	return d, VerifyDigest(d, pubPath, sigPath(path, sig))
}

// maxSignature bounds a signature file: two short lines.
const maxSignature = 4096

// VerifyDigest checks that the signature file sig signs digest with the
// key at pubPath. The file is read only if it is a regular one of at most
// maxSignature bytes (a FIFO or /dev/zero there is refused, unread).
func VerifyDigest(digest, pubPath, sig string) error {
	pub, err := readKey(pubPath, "PUBLIC KEY", pkixPrefix)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	b, err := readSmallFile(sig, maxSignature, true)
	if err != nil {
		return fmt.Errorf("%w: no signature: %v", ErrSignature, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], sigContext) {
		return fmt.Errorf("%w: %s is not a berth signature", ErrSignature, sig)
	}
	if signed := strings.TrimPrefix(lines[0], sigContext); signed != digest {
		return fmt.Errorf("%w: %s signs %s, but the image is %s", ErrSignature, sig, signed, digest)
	}
	s, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil || len(s) != ed25519.SignatureSize {
		return fmt.Errorf("%w: %s: bad signature encoding", ErrSignature, sig)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), []byte(lines[0]), s) {
		return fmt.Errorf("%w: %s is not a valid signature by %s", ErrSignature, sig, pubPath)
	}
	return nil
}

// writeFileAtomic writes data to path through a synced temporary file,
// renamed into place, the directory synced: after a power cut, path
// holds the old data or the new, never part of it. Something other than
// a regular file at path (a device, a FIFO, a symlink) is refused, not
// replaced.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	for _, step := range []func() error{
		func() error { _, err := tmp.Write(data); return err },
		func() error { return tmp.Chmod(perm) },
		tmp.Sync,
		tmp.Close,
		func() error { return filekind.CheckReplace(path) },
		func() error { return os.Rename(tmp.Name(), path) },
		func() error { return syncDir(filepath.Dir(path)) },
	} {
		if err := step(); err != nil {
			tmp.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}
