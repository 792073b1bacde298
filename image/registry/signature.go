package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"berth/image"
)

// Signatures in a registry. A signature made by `berth image sign` (a
// small text file, see image.Sign) travels as an OCI artifact tagged
// "sha256-HEX.sig" in the image's repository, HEX being the hex of the
// digest the image's reference resolves to (the cosign convention: a tag
// derived from the digest works with every registry, including
// distribution 2.8, which has no referrers API). The artifact is an OCI
// image manifest whose config is the empty descriptor and whose one layer,
// of media type application/vnd.berth.signature.v1, is the signature
// file. The file signs the digest image.Cache keys the image by: a berth
// image's file digest (what `berth image digest IMAGE` prints for the
// local file), or an OCI image's manifest digest.

// maxSignature bounds a signature file (image.VerifyDigest's own limit).
const maxSignature = 4096

// SignatureTag is the tag of the signature of the image whose reference
// resolves to digest.
func SignatureTag(digest string) string {
	return strings.Replace(digest, ":", "-", 1) + ".sig"
}

// verifySignature fetches the signature of the image top resolves to and
// checks that it signs signed with the key at pub.
func (c *client) verifySignature(ctx context.Context, top, signed, dir, pub string) error {
	ctx, cancel := smallFetch(ctx) // the signature's manifest and blob
	defer cancel()
	f, err := c.sigManifest(ctx, top)
	if err != nil {
		return fmt.Errorf("%w: %v", image.ErrSignature, err)
	}
	l := f.Layers[0]
	resp, err := c.get(ctx, "GET", "blobs/"+l.Digest)
	if err != nil {
		return fmt.Errorf("%w: %v", image.ErrSignature, err)
	}
	if resp.status != 200 {
		return fmt.Errorf("%w: %v", image.ErrSignature, statusError(resp, "signature blob"))
	}
	b, err := readAll(resp, maxSignature, "signature blob")
	if err != nil {
		return fmt.Errorf("%w: %v", image.ErrSignature, slowFetch(ctx, "signature blob", err))
	}
	if got := digestOf(b); got != l.Digest {
		return fmt.Errorf("%w: signature blob: %w: its bytes are %s, not %s", image.ErrSignature, image.ErrDigestMismatch, got, l.Digest)
	}
	path := filepath.Join(dir, "signature")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	return image.VerifyDigest(signed, pub, path)
}

// sigManifest fetches and checks the signature artifact's manifest.
func (c *client) sigManifest(ctx context.Context, top string) (*manifest, error) {
	tag := SignatureTag(top)
	resp, err := c.get(ctx, "GET", "manifests/"+tag, [2]string{"Accept", MediaOCIManifest})
	if err != nil {
		return nil, err
	}
	if resp.status == 404 {
		resp.body.Close()
		return nil, fmt.Errorf("no signature in %s/%s (tag %s)", c.ep.host, c.repo, tag)
	}
	if resp.status != 200 {
		return nil, statusError(resp, "signature "+tag)
	}
	b, err := readAll(resp, maxManifest, "signature "+tag)
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := image.DecodeJSON(b, &m); err != nil {
		return nil, fmt.Errorf("signature %s: %w", tag, err)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != MediaSignature {
		return nil, fmt.Errorf("signature %s: not a berth signature (want one layer of %s)", tag, MediaSignature)
	}
	if err := checkDescriptor(m.Layers[0], "signature", maxSignature); err != nil {
		return nil, fmt.Errorf("signature %s: %w", tag, err)
	}
	return &m, nil
}
