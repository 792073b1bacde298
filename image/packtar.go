package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
)

// packInput copies the entries of src (any format Unpack reads) to sink:
// an archive's in its order, an OCI or docker image's merged layers in
// tree order (packLayers, spooling beside out). Names
// are cleaned the way Unpack cleans them and unsafe ones are refused;
// owners become numeric, and only xattr PAX records are kept. A sparse
// file of an archive keeps its holes; the layers of an OCI or docker
// image are read whole (their sparse files, rare, become dense). It
// returns what the image says about running it (an OCI or docker image's
// config, a berth image's config frame), for the packed image to keep.
func packInput(src, out string, sink *tarSink, log io.Writer, platform string) (Config, error) {
	lim := Limits{}.withDefaults()
	in, err := openInput(src, platform, lim)
	if err != nil {
		return Config{}, err
	}
	defer in.close()
	if in.layers != nil {
		plan, err := planLayers(in.store, in.layers, lim, runtime.GOMAXPROCS(0))
		if err != nil {
			return Config{}, err
		}
		return in.config, packLayers(in, plan, lim, runtime.GOMAXPROCS(0), spoolDir(out), sink, log)
	}
	st, err := openStream(in.m.NewReader(), in.format, lim, runtime.GOMAXPROCS(0))
	if err != nil {
		return Config{}, err
	}
	defer st.close()
	return in.config, packArchive(st.r, lim, sink, log)
}

// packArchive copies the entries of the tar stream r to sink; a sparse
// file keeps its holes (its segments are read from r itself, and a new
// tar reader starts after them, as in the unpacker).
func packArchive(r io.Reader, lim Limits, sink *tarSink, log io.Writer) error {
	cr := &countingReader{r: r, tap: newTap(lim)}
	tr := tar.NewReader(cr)
	for {
		if _, err := io.Copy(io.Discard, tr); err != nil { // what a skipped entry left
			return err
		}
		start := (cr.n + tarBlockSize - 1) &^ (tarBlockSize - 1) // headers are block-aligned
		cr.tap.begin(cr.n)
		hdr, err := tr.Next()
		cr.tap.end()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("header at offset %d: %w", start, err)
		}
		sp, err := sparseOf(hdr, cr.tap, start, cr.n)
		if err == nil {
			err = packEntry(hdr, tr, cr, sp, sink, log)
		}
		if err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if sp != nil {
			tr = tar.NewReader(cr)
		}
	}
}

// packEntry writes one entry of an archive, reading its data from tr, or
// for a sparse file (sp) its segments and padding from cr.
func packEntry(hdr *tar.Header, tr *tar.Reader, cr io.Reader, sp *sparseLayout, sink *tarSink, log io.Writer) error {
	out, err := normalizeHeader(hdr)
	if err != nil {
		return err
	}
	if out == nil {
		fmt.Fprintf(log, "berth: pack: skipping %q: unsupported tar type %q\n", hdr.Name, hdr.Typeflag)
	}
	switch {
	case sp == nil && out == nil:
		return nil
	case sp == nil:
		return sink.add(out, tr)
	case out != nil && out.Typeflag == tar.TypeReg:
		err = sink.addSparse(out, cr, sp.segs)
		_, err2 := io.CopyN(io.Discard, cr, sp.pad)
		return errors.Join(err, err2)
	}
	_, err = io.CopyN(io.Discard, cr, sp.data+sp.pad)
	return err
}

// normalizeHeader returns the header berth writes for an input entry, or
// nil for an entry type it does not carry.
func normalizeHeader(in *tar.Header) (*tar.Header, error) {
	name, err := entryPath(in.Name)
	if err != nil {
		return nil, err
	}
	out := &tar.Header{
		Name:     name,
		Typeflag: in.Typeflag,
		Mode:     in.Mode & 0o7777,
		Uid:      in.Uid,
		Gid:      in.Gid,
		ModTime:  in.ModTime,
	}
	for k, v := range in.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			if out.PAXRecords == nil {
				out.PAXRecords = make(map[string]string)
			}
			out.PAXRecords[k] = v
		}
	}
	switch in.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		out.Typeflag, out.Size = tar.TypeReg, in.Size
	case tar.TypeDir:
		out.Name += "/"
		if name == "." {
			out.Name = "./"
		}
	case tar.TypeSymlink:
		out.Linkname = in.Linkname
	case tar.TypeLink:
		if out.Linkname, err = entryPath(in.Linkname); err != nil {
			return nil, fmt.Errorf("hardlink target %q: %w", in.Linkname, err)
		}
	case tar.TypeChar, tar.TypeBlock:
		out.Devmajor, out.Devminor = in.Devmajor, in.Devminor
	case tar.TypeFifo:
	default:
		return nil, nil
	}
	if name == "." && in.Typeflag != tar.TypeDir {
		return nil, errRootNotDir
	}
	if err := checkOwner(in); err != nil {
		return nil, err
	}
	return out, nil
}
