package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"berth/mmapfs"
)

// input is an opened image of any format Unpack reads.
type input struct {
	path   string // the file or directory, without a ":REF"
	ref    string // the image picked in an OCI layout or docker archive
	format string
	m      *mmapfs.Mapping   // files
	table  *mmapfs.SeekTable // berth images
	layers []layer           // OCI layouts and docker archives
	platf  Platform          // the image's, as its config says (OCI, docker)
	digest string            // known digest (OCI: the manifest's), or "" until hashed
	config Config            // what the image says about running it
	store  blobStore
}

// splitRef separates "PATH:REF" when PATH exists and the whole does not.
// Refs may hold colons ("busybox:latest"), paths rarely do, so the first
// colon after which the rest is not a path is taken.
func splitRef(src string) (string, string) {
	if _, err := os.Lstat(src); err == nil {
		return src, ""
	}
	for i := 0; i < len(src); i++ {
		if src[i] != ':' {
			continue
		}
		if _, err := os.Lstat(src[:i]); err == nil {
			return src[:i], src[i+1:]
		}
	}
	return src, ""
}

// openInput opens src and recognises its format by content.
func openInput(src, platform string, lim Limits) (_ *input, err error) {
	path, ref := splitRef(src)
	in := &input{path: path, ref: ref}
	defer func() {
		if err != nil {
			in.close()
		}
	}()
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		store, err := openDirStore(path)
		if err != nil {
			return nil, err
		}
		in.store = store
		return in, in.openOCI(platform)
	}
	if in.m, err = mmapfs.Map(path); err != nil {
		return nil, err
	}
	if in.format, err = detectFormat(in.m); err != nil {
		return nil, err
	}
	if in.format == FormatBerth {
		if in.table, err = mmapfs.ParseSeekTable(in.m, in.m.Size()); err != nil {
			return nil, fmt.Errorf("berth image: %w", err)
		}
		if in.config, err = readConfigFrame(in.m, in.table); err != nil {
			return nil, fmt.Errorf("berth image: %w", err)
		}
	}
	switch in.format {
	case formatUnknown:
		return nil, errUnknownFormat
	case FormatTar:
		store, err := openTarStore(in.m, lim)
		if err != nil || store == nil {
			return in, err // a plain tar
		}
		in.store = store
		return in, in.openOCI(platform)
	}
	if ref != "" {
		return nil, fmt.Errorf("%s is a %s, which holds one image: no ref %q to pick", path, in.format, ref)
	}
	return in, nil
}

// size is the total progress counts towards: the tar stream of a berth
// image, the file for other files, 0 (unknown) for layers.
func (in *input) size() int64 {
	switch {
	case in.layers != nil:
		return 0
	case in.table != nil:
		return in.table.Size
	}
	return in.m.Size()
}

// close releases the input.
func (in *input) close() {
	if in.store != nil {
		in.store.close()
	}
	if in.m != nil {
		in.m.Close()
	}
}

// computeDigest returns the input's digest: an OCI or docker image's
// manifest (or image ID), otherwise the sha256 of the file's bytes, read
// through the mapping.
func (in *input) computeDigest() (string, error) {
	if in.digest != "" {
		return in.digest, nil
	}
	h := sha256.New()
	r := in.m.NewReader()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("digest %s: %w", in.path, err)
	}
	in.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return in.digest, nil
}

// verifyInput checks the expected digest and the signature, when asked,
// and returns the digest it computed ("" when nothing was asked).
func verifyInput(in *input, opts UnpackOptions) (string, error) {
	if opts.Digest == "" && opts.PublicKey == "" {
		return "", nil
	}
	d, err := in.computeDigest()
	if err != nil {
		return "", err
	}
	if opts.Digest != "" {
		if err := checkDigestSyntax(opts.Digest); err != nil {
			return "", err
		}
		if !strings.EqualFold(opts.Digest, d) {
			return "", fmt.Errorf("%w: image is %s, expected %s", ErrDigestMismatch, d, opts.Digest)
		}
	}
	if opts.PublicKey != "" {
		if err := VerifyDigest(d, opts.PublicKey, sigPath(in.path, opts.Signature)); err != nil {
			return "", err
		}
	}
	return d, nil
}
