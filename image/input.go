package image

import (
	"encoding/hex"
	"fmt"
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
	// vouched: digest is a file's, vouched for by whoever put the file
	// where only berth writes (Cache.Remember, PrepareOptions.Vouched):
	// it is not sealed.
	vouched bool
	config  Config // what the image says about running it
	store   blobStore
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
	if err := in.readFile(); err != nil {
		return nil, err
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

// readFile recognises a file's format and reads a berth image's seek
// table and run config.
func (in *input) readFile() (err error) {
	if in.format, err = detectFormat(in.m); err != nil {
		return err
	}
	if in.format == FormatBerth {
		if in.table, err = mmapfs.ParseSeekTable(in.m, in.m.Size()); err != nil {
			return fmt.Errorf("berth image: %w", err)
		}
		if in.config, err = readConfigFrame(in.m, in.table); err != nil {
			return fmt.Errorf("berth image: %w", err)
		}
	}
	return nil
}

// seal binds what is read of a file from now on to its digest (see
// mmapfs.Mapping.Seal), computing it, or checking it against want when
// the digest came from elsewhere (a memo). What openInput read before
// is read again through the seal: a format, seek table and config read
// before the file was rewritten would not be the verified ones. A
// directory, an OCI or docker archive is not sealed: their digest is a
// manifest's, and each blob is checked against its own as it is read.
func (in *input) seal(want string) (string, error) {
	if in.m == nil || in.store != nil || in.m.Sealed() || in.vouched {
		if in.digest == "" {
			return "", fmt.Errorf("digest %s: none known", in.path)
		}
		return in.digest, nil
	}
	format := in.format
	sum, err := in.m.Seal()
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", in.path, err)
	}
	d := "sha256:" + hex.EncodeToString(sum[:])
	if want != "" && want != d {
		return "", fmt.Errorf("%s is %s, not the %s taken before: %w", in.path, d, want, mmapfs.ErrChanged)
	}
	in.digest = d
	if err := in.readFile(); err != nil {
		return "", fmt.Errorf("%s, read again once verified: %w", in.path, err)
	}
	if in.format != format {
		return "", fmt.Errorf("%s: a %s once verified, a %s before: %w", in.path, in.format, format, mmapfs.ErrChanged)
	}
	return d, nil
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
// manifest (or image ID), otherwise the sha256 of the file's bytes, which
// then binds the bytes read after it (seal).
func (in *input) computeDigest() (string, error) {
	if in.digest != "" {
		return in.digest, nil
	}
	return in.seal("")
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
