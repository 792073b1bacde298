package image

import (
	"archive/tar"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"berth/mmapfs"
)

// packArchive copies the entries of the archive at src (any format Unpack
// reads) to sink in their order. Names are cleaned the way Unpack cleans
// them and unsafe ones are refused; owners become numeric, times whole
// seconds, and only xattr PAX records are kept.
func packArchive(src string, sink *tarSink, log io.Writer) error {
	m, err := mmapfs.Map(src)
	if err != nil {
		return err
	}
	defer m.Close()
	arc, err := openArchive(m, Limits{}.withDefaults(), runtime.GOMAXPROCS(0))
	if err != nil {
		return err
	}
	defer arc.close()
	return mmapfs.Guard(func() error {
		tr := tar.NewReader(arc.r)
		for {
			in, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", src, err)
			}
			out, err := normalizeHeader(in)
			if err != nil {
				return fmt.Errorf("entry %q: %w", in.Name, err)
			}
			if out == nil {
				fmt.Fprintf(log, "berth: pack: skipping %q: unsupported tar type %q\n", in.Name, in.Typeflag)
				continue
			}
			if err := sink.add(out, tr); err != nil {
				return fmt.Errorf("entry %q: %w", in.Name, err)
			}
		}
	})
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
		if strings.HasPrefix(k, "SCHILY.xattr.") {
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
