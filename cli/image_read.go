package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
func imageLs(c *ctx, args []string) int {
	cmd := c.command("image ls", "IMAGE [PATH] [--json]", "Lists a directory (default the root) of a berth image, or one entry, through\nmmapfs: only the frames needed are decoded.")
	asJSON := cmd.fs.Bool("json", false, "print a JSON array instead of a table")
	pos, status := cmd.parse(args, 1, 2)
	if status >= 0 {
		return status
	}
	fsys, err := mmapfs.OpenFS(pos[0], mmapfs.Options{})
	if err != nil {
		return c.imageFail(err)
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
	if errors.Is(err, fs.ErrNotExist) {
		p := "/"
		if len(pos) == 2 {
			p += strings.TrimPrefix(pos[1], "/")
		}
		err = fmt.Errorf("ls %s: %s: no such file in the image", pos[0], p)
	}
	if err != nil {
		return c.imageFail(err)
	}
	var rows []lsRow
	if st, err := fsys.Stat(name); err == nil && st.IsDir() {
		ents, err := fsys.ReadDir(name)
		if err != nil {
			return c.imageFail(err)
		}
		for _, e := range ents {
			i, _ := e.Info()
			rows = append(rows, lsRowOf(strings.TrimPrefix(name+"/"+e.Name(), "./"), i))
		}
	} else {
		rows = append(rows, lsRowOf(name, info))
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []lsRow{}
		}
		return c.imageStatus(enc.Encode(rows))
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
		fmt.Fprintln(c.stdout, line)
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
func imageCat(c *ctx, args []string) int {
	cmd := c.command("image cat", "IMAGE PATH", "Writes one file of a berth image to stdout, decoding only its frames.")
	pos, status := cmd.parse(args, 2, 2)
	if status >= 0 {
		return status
	}
	fsys, err := mmapfs.OpenFS(pos[0], mmapfs.Options{})
	if err != nil {
		return c.imageFail(err)
	}
	defer fsys.Close()
	name := strings.Trim(filepath.Clean("/"+pos[1]), "/")
	f, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("cat %s: %s: no such file in the image", pos[0], pos[1])
		}
		return c.imageFail(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st != nil && st.IsDir() {
		return c.imageFail(fmt.Errorf("cat %s: %s: is a directory", pos[0], pos[1]))
	}
	_, err = io.Copy(c.stdout, f.(io.Reader))
	if err != nil {
		err = fmt.Errorf("cat %s: %s: %w", pos[0], pos[1], err)
	}
	return c.imageStatus(err)
}
