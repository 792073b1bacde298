package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"berth/image"
)

// Downloads. A blob is written to FILE.partial as it arrives, hashed on
// the way, and renamed to FILE only once it has its descriptor's size and
// digest. A broken connection is resumed where the file ends with
// "Range: bytes=N-", within one pull (after a pause that doubles from 1 s
// to 16 s, six times in a row without progress) and across pulls, which
// find the partial file again (see Pull).

// retries is how many times in a row a download is resumed without
// progress before the pull fails; backoff is the first pause.
var (
	retries = 6
	backoff = time.Second
)

// copyBuffer is the download buffer: memory does not grow with a blob.
const copyBuffer = 256 << 10

// permanent marks failures retrying cannot mend.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// download fetches blob d into path, resuming path+".partial"; tick gets
// the bytes as they arrive. A failure before the first byte leaves no
// empty partial file (dropEmptyPull then removes the empty tree).
func (c *client) download(ctx context.Context, d descriptor, path string, tick func(int64)) (err error) {
	if st, err := os.Stat(path); err == nil && st.Size() == d.Size {
		tick(d.Size)
		return nil // renamed into place only once verified
	}
	f, err := os.OpenFile(path+".partial", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := resumeHash(f, h, d.Size)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && n == 0 {
			os.Remove(path + ".partial")
		}
	}()
	tick(n)
	pause, failures, best := backoff, 0, n
	for n < d.Size {
		got, err := c.fetchRange(ctx, d, f, h, n, tick)
		n += got
		if err == nil {
			continue
		}
		if errors.As(err, new(permanent)) || ctx.Err() != nil {
			return err
		}
		if n > best { // progress past anything seen before: a new run of retries
			best, pause, failures = n, backoff, 0
		}
		if failures++; failures > retries {
			return fmt.Errorf("gave up after %d attempts: %w", retries, err)
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
		pause *= 2
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest {
		os.Remove(path + ".partial")
		return fmt.Errorf("blob %s: %w: its bytes are %s", d.Digest, image.ErrDigestMismatch, got)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return os.Rename(path+".partial", path)
}

// resumeHash hashes what a partial file holds already and returns its
// length; a file longer than the blob is started again.
func resumeHash(f *os.File, h hash.Hash, size int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() > size {
		return 0, f.Truncate(0)
	}
	buf := make([]byte, copyBuffer)
	n, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, st.Size()), buf)
	if err != nil {
		return 0, fmt.Errorf("rehashing %s: %w", f.Name(), err)
	}
	return n, nil
}

// fetchRange asks for the blob from offset n and appends what comes to f;
// it returns the bytes written.
func (c *client) fetchRange(ctx context.Context, d descriptor, f *os.File, h hash.Hash, n int64, tick func(int64)) (int64, error) {
	var hdr [][2]string
	if n > 0 {
		hdr = append(hdr, [2]string{"Range", "bytes=" + strconv.FormatInt(n, 10) + "-"})
	}
	resp, err := c.get(ctx, "GET", "blobs/"+d.Digest, hdr...)
	if err != nil {
		return 0, err
	}
	defer resp.body.Close()
	switch {
	case resp.status == 206 && n > 0:
		if !strings.HasPrefix(resp.get("Content-Range"), "bytes "+strconv.FormatInt(n, 10)+"-") {
			return 0, permanent{fmt.Errorf("blob %s: asked for bytes from %d, got Content-Range %s", d.Digest, n, quoted(resp.get("Content-Range")))}
		}
	case resp.status == 200:
		if n > 0 { // the server ignored the range: start again
			if err := f.Truncate(0); err != nil {
				return 0, err
			}
			h.Reset()
			tick(-n)
			return -n, errors.New("the registry ignored the range request")
		}
	case resp.status >= 500 || resp.status == 408 || resp.status == 429:
		return 0, statusError(resp, "blob "+d.Digest)
	default:
		return 0, permanent{statusError(resp, "blob "+d.Digest)}
	}
	if _, err := f.Seek(n, io.SeekStart); err != nil {
		return 0, err
	}
	w := io.MultiWriter(f, h, tickWriter(tick))
	// One byte more than the blob's size tells a blob that is too long.
	got, err := io.CopyBuffer(w, io.LimitReader(resp.body, d.Size-n+1), make([]byte, copyBuffer))
	if n+got > d.Size {
		return got, permanent{fmt.Errorf("blob %s: longer than the %d bytes its descriptor says", d.Digest, d.Size)}
	}
	if err == nil && n+got < d.Size {
		err = fmt.Errorf("blob %s: the connection ended at byte %d of %d", d.Digest, n+got, d.Size)
	}
	return got, err
}

// tickWriter reports the bytes written through it.
type tickWriter func(int64)

func (t tickWriter) Write(p []byte) (int, error) {
	t(int64(len(p)))
	return len(p), nil
}
