package image

import (
	"archive/tar"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// packInput copies the entries of src (any format Unpack reads) to sink:
// an archive's in its order, an OCI or docker image's merged layers in
// tree order (packLayers, spooling beside out). Names
// are cleaned the way Unpack cleans them and unsafe ones are refused;
// owners become numeric, times whole seconds, and only xattr PAX records
// are kept.
func packInput(src, out string, sink *tarSink, log io.Writer, platform string) error {
	lim := Limits{}.withDefaults()
	in, err := openInput(src, platform, lim)
	if err != nil {
		return err
	}
	defer in.close()
	add := func(hdr *tar.Header, data io.Reader) error {
		out, err := normalizeHeader(hdr)
		if err != nil {
			return err
		}
		if out == nil {
			fmt.Fprintf(log, "berth: pack: skipping %q: unsupported tar type %q\n", hdr.Name, hdr.Typeflag)
			return nil
		}
		return sink.add(out, data)
	}
	if in.layers != nil {
		plan, err := planLayers(in.store, in.layers, lim, runtime.GOMAXPROCS(0))
		if err != nil {
			return err
		}
		return packLayers(in, plan, lim, runtime.GOMAXPROCS(0), spoolDir(out), sink, log)
	}
	st, err := openStream(in.m.NewReader(), in.format, lim, runtime.GOMAXPROCS(0))
	if err != nil {
		return err
	}
	defer st.close()
	tr := tar.NewReader(st.r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", src, err)
		}
		if err := add(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
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
		ModTime:  time.Unix(in.ModTime.Unix(), 0),
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
	return out, nil
}
