package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"berth/image"

	"github.com/klauspost/compress/zstd"
)

// PushOptions tune Push.
type PushOptions struct {
	// Platform is what the image runs on, written in its config
	// ("" is the running platform): a berth image does not record it.
	Platform string
	// Signature is a signature file of the image (see image.Sign) pushed
	// with it, "" for none.
	Signature  string
	Registries Registries
	// Progress, when not nil, receives the layer's upload progress, a
	// line redrawn in place ("uploading 1.5 / 12.0 MiB"), ended by a
	// newline.
	Progress io.Writer
}

// Push publishes the berth image at src as an OCI image whose one layer,
// of media type tar+zstd, is the file itself, byte for byte: its layer
// digest is the image's berth digest. The config carries the image's
// config frame and the digest of its tar stream (diff_id). It returns the
// manifest's digest.
func Push(ctx context.Context, src, ref string, opts PushOptions) (string, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	if r.Digest != "" {
		return "", fmt.Errorf("push %s: a reference to push to names a tag, not a digest", ref)
	}
	layer, cfgBytes, err := describe(src, opts.Platform)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", src, err)
	}
	c, err := newClient(r.Host, r.Repo, opts.Registries)
	if err != nil {
		return "", err
	}
	cfg := descriptor{MediaType: MediaOCIConfig, Digest: digestOf(cfgBytes), Size: int64(len(cfgBytes))}
	if err := c.uploadFile(ctx, layer, src, opts.Progress); err != nil {
		return "", fmt.Errorf("push %s: layer: %w", src, err)
	}
	if err := c.uploadBytes(ctx, cfg, cfgBytes); err != nil {
		return "", fmt.Errorf("push %s: config: %w", src, err)
	}
	digest, err := c.putManifest(ctx, r.Tag, cfg, layer)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", src, err)
	}
	if opts.Signature != "" {
		if err := c.pushSignature(ctx, opts.Signature, layer.Digest, digest); err != nil {
			return digest, fmt.Errorf("push %s: signature: %w", src, err)
		}
	}
	return digest, nil
}

// describe reads a berth image: its layer descriptor and OCI config.
func describe(src, platform string) (descriptor, []byte, error) {
	isBerth, cfg, err := image.BerthConfig(src)
	if err != nil {
		return descriptor{}, nil, err
	}
	if !isBerth {
		return descriptor{}, nil, fmt.Errorf("not a berth image (berth image pack makes one)")
	}
	p, err := image.ParsePlatform(platform)
	if err != nil {
		return descriptor{}, nil, err
	}
	f, err := os.Open(src)
	if err != nil {
		return descriptor{}, nil, err
	}
	defer f.Close()
	fileHash, tarHash := sha256.New(), sha256.New()
	dec, err := zstd.NewReader(io.TeeReader(f, fileHash), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(image.DefaultMaxWindow))
	if err != nil {
		return descriptor{}, nil, err
	}
	defer dec.Close()
	if _, err := io.CopyBuffer(tarHash, dec, make([]byte, copyBuffer)); err != nil {
		return descriptor{}, nil, fmt.Errorf("reading its tar stream: %w", err)
	}
	if _, err := io.Copy(fileHash, f); err != nil { // what the decoder left unread
		return descriptor{}, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return descriptor{}, nil, err
	}
	layer := descriptor{MediaType: MediaLayerZstd, Digest: "sha256:" + hex.EncodeToString(fileHash.Sum(nil)), Size: st.Size()}
	config := map[string]any{
		"architecture": p.Architecture, "os": p.OS,
		"config": cfg,
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(tarHash.Sum(nil))}},
	}
	if p.Variant != "" {
		config["variant"] = p.Variant
	}
	b, err := json.Marshal(config)
	return layer, b, err
}

// exists reports whether the repository has blob d.
func (c *client) exists(ctx context.Context, d descriptor) (bool, error) {
	resp, err := c.do(ctx, &request{method: "HEAD", url: c.url("blobs/" + d.Digest), length: -1}, c.scope("pull,push"))
	if err != nil {
		return false, err
	}
	resp.body.Close()
	return resp.status == 200, nil
}

// uploadFile uploads blob d from the file at path unless it is there.
func (c *client) uploadFile(ctx context.Context, d descriptor, path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	p := newProgress(w, "uploading", []descriptor{d})
	err = c.upload(ctx, d, progressReader{f, p})
	if p.n > 0 {
		p.done() // ends the line, failed or not; nothing when the registry had the blob
	}
	return err
}

// uploadBytes uploads blob d of bytes b unless it is there.
func (c *client) uploadBytes(ctx context.Context, d descriptor, b []byte) error {
	return c.upload(ctx, d, bytes.NewReader(b))
}

// upload is a monolithic upload: POST to open a session, PUT the bytes.
func (c *client) upload(ctx context.Context, d descriptor, body io.Reader) error {
	if ok, err := c.exists(ctx, d); err != nil || ok {
		return err
	}
	req := &request{method: "POST", url: c.url("blobs/uploads/"), length: 0}
	resp, err := c.do(ctx, req, c.scope("pull,push"))
	if err != nil {
		return err
	}
	if resp.status != 202 {
		return statusError(resp, "starting the upload of "+d.Digest)
	}
	resp.body.Close()
	// The bytes and the credentials go back to the registry as it was
	// reached: same host, and no plain HTTP from a TLS registry (a proxy
	// that terminates TLS and answers http:// locations, say).
	loc, err := resp.url.Parse(resp.get("Location"))
	if err != nil || resp.get("Location") == "" || loc.Host != c.ep.host || loc.Scheme != c.url("/").Scheme {
		return fmt.Errorf("upload of %s: the registry gave the upload location %s, not on %s", d.Digest, quoted(resp.get("Location")), c.url("/").Redacted())
	}
	q := loc.Query()
	q.Set("digest", d.Digest)
	loc.RawQuery = q.Encode()
	put := &request{method: "PUT", url: loc, body: body, length: d.Size,
		header: [][2]string{{"Content-Type", "application/octet-stream"}}}
	if resp, err = c.do(ctx, put, c.scope("pull,push")); err != nil {
		return err
	}
	if resp.status != 201 {
		return statusError(resp, "upload of "+d.Digest)
	}
	resp.body.Close()
	return nil
}

// putManifest writes an image manifest under tag and returns its digest.
func (c *client) putManifest(ctx context.Context, tag string, cfg descriptor, layers ...descriptor) (string, error) {
	m := map[string]any{"schemaVersion": 2, "mediaType": MediaOCIManifest, "config": cfg, "layers": layers}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	u := c.url("manifests/" + url.PathEscape(tag))
	req := &request{method: "PUT", url: u, body: bytes.NewReader(b), length: int64(len(b)),
		header: [][2]string{{"Content-Type", MediaOCIManifest}}}
	resp, err := c.do(ctx, req, c.scope("pull,push"))
	if err != nil {
		return "", err
	}
	if resp.status != 201 {
		return "", statusError(resp, "manifest "+tag)
	}
	resp.body.Close()
	return digestOf(b), nil
}

// pushSignature pushes the signature file sig of the image whose berth
// digest is signed, tagged after the manifest digest.
func (c *client) pushSignature(ctx context.Context, sig, signed, manifestDigest string) error {
	b, err := readSmall(sig, maxSignature)
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if want := "berth-image-v1 " + signed; first != want {
		return fmt.Errorf("%s does not sign this image (%s): its first line is %s", sig, signed, quoted(first))
	}
	empty := []byte("{}")
	cfg := descriptor{MediaType: mediaOCIEmpty, Digest: digestOf(empty), Size: int64(len(empty))}
	layer := descriptor{MediaType: MediaSignature, Digest: digestOf(b), Size: int64(len(b))}
	if err := c.uploadBytes(ctx, cfg, empty); err != nil {
		return err
	}
	if err := c.uploadBytes(ctx, layer, b); err != nil {
		return err
	}
	_, err = c.putManifest(ctx, SignatureTag(manifestDigest), cfg, layer)
	return err
}
