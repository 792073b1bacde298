package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth/mmapfs"
)

// `berth image ls` and `cat`: reading an image through mmapfs.

// lsRow is one entry as `ls --json` prints it.
type lsRow struct {
	Path     string `json:"path"`
	Type     string `json:"type"`
	Mode     string `json:"mode"`
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	Size     int64  `json:"size"`
	MTime    string `json:"mtime"`
	Link     string `json:"link,omitempty"`
	Devmajor uint32 `json:"devmajor,omitempty"`
	Devminor uint32 `json:"devminor,omitempty"`
}

// imageLs is `berth image ls IMAGE [PATH]`.
func imageLs(args []string) int {
	fset := flag.NewFlagSet("image ls", flag.ContinueOnError)
	asJSON := fset.Bool("json", false, "print a JSON array instead of a table")
	pos, status := imageFlags(fset, args, "ls IMAGE [PATH]", 1, 2)
	if status >= 0 {
		return status
	}
	fsys, err := mmapfs.OpenFS(pos[0], mmapfs.Options{})
	if err != nil {
		return imageFail(err)
	}
	defer fsys.Close()
	name := "."
	if len(pos) == 2 {
		name = strings.Trim(filepath.Clean("/"+pos[1]), "/")
		if name == "" {
			name = "."
		}
	}
	info, err := fsys.Lstat(name)
	if err != nil {
		return imageFail(err)
	}
	var rows []lsRow
	if st, err := fsys.Stat(name); err == nil && st.IsDir() {
		ents, err := fsys.ReadDir(name)
		if err != nil {
			return imageFail(err)
		}
		for _, e := range ents {
			i, _ := e.Info()
			rows = append(rows, lsRowOf(strings.TrimPrefix(name+"/"+e.Name(), "./"), i))
		}
	} else {
		rows = append(rows, lsRowOf(name, info))
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []lsRow{}
		}
		return imageStatus(enc.Encode(rows))
	}
	for _, r := range rows {
		size := fmt.Sprint(r.Size)
		if r.Type == "char" || r.Type == "block" {
			size = fmt.Sprintf("%d, %d", r.Devmajor, r.Devminor)
		}
		line := fmt.Sprintf("%s %5d %5d %10s %s %s", r.Mode, r.UID, r.GID, size, r.MTime[:16], r.Path)
		if r.Link != "" {
			line += " -> " + r.Link
		}
		fmt.Println(line)
	}
	return exitOK
}

// lsRowOf describes one entry.
func lsRowOf(path string, info fs.FileInfo) lsRow {
	e := info.Sys().(*mmapfs.Entry)
	r := lsRow{Path: path, Type: e.Type.String(), Mode: e.ModeString(), UID: e.UID, GID: e.GID,
		Size: e.Size, MTime: time.Unix(e.MTime, int64(e.MTimeNs)).UTC().Format(time.RFC3339Nano), Link: e.Link}
	if e.Type == mmapfs.TypeChar || e.Type == mmapfs.TypeBlock {
		r.Devmajor, r.Devminor = e.Devmajor, e.Devminor
	}
	return r
}

// imageCat is `berth image cat IMAGE PATH`.
func imageCat(args []string) int {
	fset := flag.NewFlagSet("image cat", flag.ContinueOnError)
	pos, status := imageFlags(fset, args, "cat IMAGE PATH", 2)
	if status >= 0 {
		return status
	}
	fsys, err := mmapfs.OpenFS(pos[0], mmapfs.Options{})
	if err != nil {
		return imageFail(err)
	}
	defer fsys.Close()
	name := strings.Trim(filepath.Clean("/"+pos[1]), "/")
	f, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("cat %s: %s: no such file in the image", pos[0], pos[1])
		}
		return imageFail(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st != nil && st.IsDir() {
		return imageFail(fmt.Errorf("cat %s: %s: is a directory", pos[0], pos[1]))
	}
	_, err = io.Copy(os.Stdout, f.(io.Reader))
	if err != nil {
		err = fmt.Errorf("cat %s: %s: %w", pos[0], pos[1], err)
	}
	return imageStatus(err)
}
