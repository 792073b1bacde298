package appliance

import (
	"bytes"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// TestNewcMatchesURoot writes the same records with berth's newc writer
// and u-root's (which berth used before): directories, a device, files
// of every length modulo 4 with names of every length modulo 4, and the
// trailer give the same bytes, so an initramfs's bytes and digests do
// not change.
func TestNewcMatchesURoot(t *testing.T) {
	type rec struct {
		r    newcRecord
		data string
	}
	recs := []rec{
		{r: newcRecord{name: "dev", ino: 1, mode: modeDir | 0o755, nlink: 2}},
		{r: newcRecord{name: "dev/console", ino: 2, mode: modeChr | 0o600, nlink: 1, rmajor: 5, rminor: 1}},
		{r: newcRecord{name: "etc", ino: 3, mode: modeDir | 0o755, nlink: 2, mtime: 1700000000}},
	}
	for n := 0; n < 8; n++ {
		name := "etc/" + strings.Repeat("f", n+1)
		recs = append(recs, rec{r: newcRecord{name: name, ino: uint64(4 + n), mode: modeReg | 0o644, nlink: 1, mtime: 0xffffffff}, data: strings.Repeat("x", n)})
	}
	var ours, theirs bytes.Buffer
	nw := &newcWriter{w: &ours}
	uw := cpio.Newc.Writer(&theirs)
	for _, x := range recs {
		info := cpio.Info{Name: x.r.name, Ino: x.r.ino, Mode: x.r.mode, NLink: x.r.nlink, MTime: x.r.mtime, Rmajor: x.r.rmajor, Rminor: x.r.rminor}
		var err error
		if x.r.mode&modeFmt == modeReg {
			x.r.size = uint64(len(x.data))
			info.FileSize = x.r.size
			err = nw.file(x.r, strings.NewReader(x.data))
			if err == nil {
				err = uw.WriteRecord(cpio.StaticRecord([]byte(x.data), info))
			}
		} else {
			err = nw.record(x.r)
			if err == nil {
				err = uw.WriteRecord(cpio.Record{Info: info})
			}
		}
		if err != nil {
			t.Fatalf("%s: %v", x.r.name, err)
		}
	}
	if err := nw.trailer(); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(uw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours.Bytes(), theirs.Bytes()) {
		t.Fatalf("berth's newc archive differs from u-root's:\n%q\n%q", ours.Bytes(), theirs.Bytes())
	}
}

// TestNewcRefuses checks that a file whose data is shorter or longer
// than its record says, and a field beyond 32 bits, are errors naming
// the record, not a corrupt archive written in silence.
func TestNewcRefuses(t *testing.T) {
	tests := []struct {
		name string
		r    newcRecord
		data string
		want string
	}{
		{"shrunk", newcRecord{name: "a", mode: modeReg, size: 4}, "abc", "a: 3 bytes of data, not 4"},
		{"grown", newcRecord{name: "b", mode: modeReg, size: 2}, "abc", "b: 3 bytes of data, not 2"},
		{"big", newcRecord{name: "c", mode: modeReg, mtime: 1 << 32}, "", "cpio field 5 of c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&newcWriter{w: &bytes.Buffer{}}).file(tt.r, strings.NewReader(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
