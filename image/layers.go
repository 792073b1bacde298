package image

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"

	"berth/mmapfs"
)

// layer is one layer of an OCI or docker image.
type layer struct {
	name   string // its file in the layout or archive
	digest string // expected sha256 of its bytes; "" when nothing names it (docker's layer.tar)
	size   int64  // expected size, or -1
	diffID string // expected sha256 of its uncompressed tar
}

// layerStream is a layer being read: compressed bytes hashed on the way
// in, the tar stream hashed on the way out.
type layerStream struct {
	l        layer
	blob     blob
	in       *bufio.Reader
	blobHash hash.Hash
	diffHash hash.Hash
	dec      *stream
	tar      *countingReader
}

// openLayer opens l and recognises its compression (tar, gzip or zstd) by
// content, whatever its media type says.
func openLayer(s blobStore, l layer, lim Limits, workers int) (*layerStream, error) {
	b, err := s.open(l.name)
	if err != nil {
		return nil, err
	}
	if l.size >= 0 && b.size != l.size {
		b.close()
		return nil, fmt.Errorf("%w: %d bytes, the manifest says %d", ErrDigestMismatch, b.size, l.size)
	}
	ls := &layerStream{l: l, blob: b, blobHash: sha256.New(), diffHash: sha256.New()}
	ls.in = bufio.NewReaderSize(io.TeeReader(b.reader(), ls.blobHash), 256<<10)
	magic, _ := ls.in.Peek(4)
	format := FormatTar
	switch {
	case len(magic) == 4 && binary.LittleEndian.Uint32(magic) == mmapfs.ZstdFrameMagic:
		format = FormatZstd
	case len(magic) >= 3 && magic[0] == 0x1f && magic[1] == 0x8b && magic[2] == 8:
		format = FormatGzip
	}
	if ls.dec, err = openStream(ls.in, format, lim, workers); err != nil {
		b.close()
		return nil, err
	}
	ls.tar = &countingReader{r: io.TeeReader(ls.dec.r, ls.diffHash), tap: newTap(lim)}
	return ls, nil
}

// finish reads both streams to their ends, at most maxTrailing bytes of
// the tar's after its end, and checks the digests.
func (ls *layerStream) finish() error {
	end := ls.tar.n
	err := drainTrailing(ls.tar)
	ls.dec.close()
	if err == nil {
		_, err = io.Copy(io.Discard, ls.in)
	}
	if err != nil {
		return fmt.Errorf("after the end of the tar, offset %d: %w", end, err)
	}
	if got := "sha256:" + hex.EncodeToString(ls.blobHash.Sum(nil)); ls.l.digest != "" && got != ls.l.digest {
		return fmt.Errorf("%w: blob is %s", ErrDigestMismatch, got)
	}
	if got := "sha256:" + hex.EncodeToString(ls.diffHash.Sum(nil)); got != ls.l.diffID {
		return fmt.Errorf("%w: uncompressed layer is %s, the config's diff_id is %s", ErrDigestMismatch, got, ls.l.diffID)
	}
	return nil
}

func (ls *layerStream) close() {
	ls.dec.close()
	ls.blob.close()
}

// eachEntry reads every header of every layer in order, calling fn with
// the layer index, the entry's number in its layer, and the tar reader for
// its data; each layer's digests are checked at its end. Errors name the
// layer, the entry and its offset in the layer's tar stream.
func eachEntry(s blobStore, layers []layer, lim Limits, workers int, fn func(l, seq int, hdr *tar.Header, tr *tar.Reader, headerBytes int64) error) error {
	budget := decompressBudget(lim)
	left := budget
	for l, lay := range layers {
		err := mmapfs.Guard(func() error {
			ls, err := openLayer(s, lay, lim, workers)
			if err != nil {
				return err
			}
			defer ls.close()
			ls.tar.r = &budgetReader{r: ls.tar.r, left: &left, limit: budget}
			tr := tar.NewReader(ls.tar)
			var dataEnd int64
			var prev string
			sparse := false
			for seq := 0; ; seq++ {
				// What fn left of the entry's data is read first, so
				// that the cap is for the header alone. Not a sparse
				// file's: archive/tar reads it with its holes filled
				// (a few bytes can claim terabytes); its Next skips
				// what is stored, up to dataEnd, which the cap then
				// allows on top of the header.
				if !sparse {
					if _, err := io.Copy(io.Discard, tr); err != nil {
						return fmt.Errorf("entry %q: %w", prev, err)
					}
				}
				before := ls.tar.n
				if sparse {
					before = max(before, dataEnd)
				}
				ls.tar.hdr.start(lim.MaxHeaderBytes)
				ls.tar.hdr.left += before - ls.tar.n // the sparse data Next skips first
				ls.tar.tap.begin(before)
				hdr, err := tr.Next()
				ls.tar.hdr.stop()
				ls.tar.tap.end()
				if err == io.EOF {
					break
				}
				start := headerStart(dataEnd, before, ls.tar.n)
				if err != nil {
					if prev == "" {
						return fmt.Errorf("the first header, at offset %d: %w", start, err)
					}
					return fmt.Errorf("the header after entry %q, at offset %d: %w", prev, start, err)
				}
				dataEnd = paddedEnd(ls.tar.n, hdr)
				sp, err := sparseOf(hdr, ls.tar.tap, start, ls.tar.n)
				if err != nil {
					return fmt.Errorf("entry %q at offset %d: %w", hdr.Name, start, err)
				}
				if sparse = sp != nil; sparse {
					dataEnd = ls.tar.n + sp.data + sp.pad // what is stored, not its size
				}
				if err := fn(l, seq, hdr, tr, ls.tar.n-start); err != nil {
					return fmt.Errorf("entry %q at offset %d: %w", hdr.Name, start, err)
				}
				prev = hdr.Name
			}
			return ls.finish()
		})
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", l, lay.name, err)
		}
	}
	return nil
}

// planLayers is the first pass (see merge.go): it reads every layer's
// headers, checks every digest and the limits, and returns what the second
// pass emits. Nothing is written.
func planLayers(s blobStore, layers []layer, lim Limits, workers int) (*mergePlan, error) {
	mg := newMerger(lim.MaxEntries)
	entries := 0
	err := eachEntry(s, layers, lim, workers, func(l, seq int, hdr *tar.Header, _ *tar.Reader, headerBytes int64) error {
		if entries++; entries > lim.MaxEntries {
			return fmt.Errorf("%w: over the limit of %d", errTooManyEntries, lim.MaxEntries)
		}
		if headerBytes > lim.MaxHeaderBytes {
			return fmt.Errorf("%w: %d bytes, over the limit of %d", errHeaderTooBig, headerBytes, lim.MaxHeaderBytes)
		}
		return mg.add(l, seq, hdr)
	})
	if err != nil {
		return nil, err
	}
	plan := mg.plan()
	if plan.bytes > lim.MaxBytes {
		return nil, fmt.Errorf("%w: the layers unpack to %d bytes, over the limit of %d%s", errTooManyBytes, plan.bytes, lim.MaxBytes, lim.bytesWhy)
	}
	return plan, nil
}

// emitLayers is the second pass: it reads the layers again (checking the
// digests again) and calls emit for each entry of the final tree, with its
// data.
func emitLayers(s blobStore, layers []layer, plan *mergePlan, lim Limits, workers int, emit func(hdr *tar.Header, data io.Reader) error) error {
	err := eachEntry(s, layers, lim, workers, func(l, seq int, hdr *tar.Header, tr *tar.Reader, _ int64) error {
		if out := plan.emitted(entryKey(l, seq), hdr); out != nil {
			return emit(out, tr)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, hdr := range plan.dirs {
		if err := emit(hdr, nil); err != nil {
			return fmt.Errorf("directory %q: %w", hdr.Name, err)
		}
	}
	return nil
}

// runLayers extracts an OCI or docker image's merged layers, planned by
// planLayers.
func (u *unpacker) runLayers(in *input, plan *mergePlan, workers int) error {
	err := emitLayers(in.store, in.layers, plan, u.lim, workers, func(hdr *tar.Header, data io.Reader) error {
		rel, err := u.admit(hdr, 0, nil)
		if err != nil {
			return err
		}
		n, err := u.x.extract(hdr, rel, fileData{r: data})
		u.stats.Entries++
		u.stats.Bytes += n
		u.prog.tick(u.stats.Entries, u.declared)
		return err
	})
	if err != nil {
		return fmt.Errorf("unpack %s: %w", u.src, err)
	}
	return nil
}

// decompressBudget bounds the bytes all layers may decompress to, the
// data of entries a later one replaces or hides included (MaxBytes counts
// only what is written): twice MaxBytes, and a gigabyte for the headers.
// A few megabytes of compressed zeros would otherwise keep the image
// goroutine decompressing for hours, and a shutdown waits for it.
func decompressBudget(lim Limits) int64 {
	m := lim.withDefaults().MaxBytes
	if m > (math.MaxInt64-decompressSlack)/2 {
		return math.MaxInt64
	}
	return 2*m + decompressSlack
}

// decompressSlack is the budget's allowance for headers and padding (a
// variable for tests).
var decompressSlack int64 = 1 << 30

// budgetReader fails once the layers have decompressed more than limit
// bytes in all (left is what remains, shared by the layers).
type budgetReader struct {
	r     io.Reader
	left  *int64
	limit int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if *b.left -= int64(n); *b.left < 0 {
		return n, fmt.Errorf("the layers decompress to more than %d bytes (twice what the image may unpack to, and 1 GiB), the data of replaced entries counted", b.limit)
	}
	return n, err
}
