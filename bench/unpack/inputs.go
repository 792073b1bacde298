package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// rootfsSpec is a Debian tree the bench builds once with debootstrap.
type rootfsSpec struct {
	name    string
	include []string // extra packages
}

var specs = []rootfsSpec{
	{name: "minbase"},
	// About 1.8 GB: a toolchain-heavy tree with large files (libLLVM, the
	// JDK's modules, Go's toolchain) beside many small ones.
	{name: "large", include: []string{"build-essential", "python3", "golang-1.19-go", "openjdk-17-jdk-headless", "libllvm15"}},
}

// inputs are one rootfs in every form the bench unpacks.
type inputs struct {
	name      string
	rootfs    string
	tar       string // uncompressed, GNU tar
	zst       string // zstd -3, one frame
	berth     string // berth image pack of tar
	baseImage string // the same, packed by the baseline berth
	layout    string // OCI layout with one tar+gzip layer, ref "bench"
	middle    string // a regular file from the middle of the tar
	entries   int
	tarBytes  int64
	zstBytes  int64
	berthSize int64
}

// prepare builds (or finds in cache) every form of spec; with a baseline
// berth, also the image it packs.
func prepare(cache, berth, baseline string, spec rootfsSpec) (*inputs, error) {
	in := &inputs{name: spec.name, rootfs: filepath.Join(cache, spec.name)}
	if err := debootstrap(in.rootfs, spec.include); err != nil {
		return nil, err
	}
	art := filepath.Join(cache, "artifacts", spec.name)
	if err := os.MkdirAll(art, 0o755); err != nil {
		return nil, err
	}
	in.tar = filepath.Join(art, spec.name+".tar")
	in.zst = in.tar + ".zst"
	in.berth = filepath.Join(art, spec.name+".berth")
	in.layout = filepath.Join(art, "oci")
	steps := []struct {
		out    string
		cmd    []string
		always bool // the image format is what is being measured: repacked every run
	}{
		{in.tar, []string{"tar", "-C", in.rootfs, "--numeric-owner", "-cf", in.tar + ".tmp", "."}, false},
		{in.zst, []string{"zstd", "-3", "-T1", "-q", "-f", in.tar, "-o", in.zst + ".tmp"}, false},
		{in.berth, []string{berth, "image", "pack", in.tar, "-o", in.berth}, true},
	}
	if baseline != "" {
		in.baseImage = filepath.Join(art, spec.name+".baseline.berth")
		steps = append(steps, struct {
			out    string
			cmd    []string
			always bool
		}{in.baseImage, []string{baseline, "image", "pack", in.tar, "-o", in.baseImage}, true})
	}
	for _, s := range steps {
		if _, err := os.Stat(s.out); err == nil && !s.always {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench unpack: making %s\n", s.out)
		if out, err := exec.Command(s.cmd[0], s.cmd[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", strings.Join(s.cmd, " "), err, out)
		}
		if !s.always {
			if err := os.Rename(s.out+".tmp", s.out); err != nil {
				return nil, err
			}
		}
	}
	if _, err := os.Stat(filepath.Join(in.layout, "index.json")); err != nil {
		fmt.Fprintf(os.Stderr, "bench unpack: making OCI layout %s\n", in.layout)
		if err := makeLayout(in.tar, in.layout); err != nil {
			return nil, err
		}
	}
	if err := in.describe(); err != nil {
		return nil, err
	}
	return in, nil
}

// debootstrap builds a bookworm minbase tree (with extra packages) at dir
// unless it exists; the finished tree is renamed into place.
func debootstrap(dir string, include []string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	args := []string{"--variant=minbase"}
	if len(include) > 0 {
		args = append(args, "--include="+strings.Join(include, ","))
	}
	args = append(args, "bookworm", tmp, "http://deb.debian.org/debian")
	fmt.Fprintf(os.Stderr, "bench unpack: debootstrap %s (once; cached in %s)\n", strings.Join(args, " "), dir)
	cmd := exec.Command("debootstrap", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	return os.Rename(tmp, dir)
}

// describe counts the tar's entries, picks its middle regular file and
// reads the sizes.
func (in *inputs) describe() error {
	f, err := os.Open(in.tar)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var regs []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		in.entries++
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 4096 {
			regs = append(regs, strings.TrimPrefix(hdr.Name, "./"))
		}
	}
	in.middle = regs[len(regs)/2]
	for _, p := range []struct {
		path string
		size *int64
	}{{in.tar, &in.tarBytes}, {in.zst, &in.zstBytes}, {in.berth, &in.berthSize}} {
		st, err := os.Stat(p.path)
		if err != nil {
			return err
		}
		*p.size = st.Size()
	}
	return nil
}

// makeLayout writes an OCI image layout whose one layer is the tar,
// gzip-compressed, as registries serve layers.
func makeLayout(tarPath, layout string) error {
	tmp := layout + ".tmp"
	os.RemoveAll(tmp)
	blobs := filepath.Join(tmp, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	src, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer src.Close()
	gzPath := filepath.Join(tmp, "layer.tmp")
	out, err := os.Create(gzPath)
	if err != nil {
		return err
	}
	diff, blob := sha256.New(), sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(out, blob))
	if _, err := io.Copy(zw, io.TeeReader(src, diff)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	size, _ := out.Seek(0, io.SeekCurrent)
	out.Close()
	layerDigest := "sha256:" + hex.EncodeToString(blob.Sum(nil))
	if err := os.Rename(gzPath, filepath.Join(blobs, strings.TrimPrefix(layerDigest, "sha256:"))); err != nil {
		return err
	}
	putJSON := func(v any) (map[string]any, error) {
		b, _ := json.Marshal(v)
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		return map[string]any{"digest": d, "size": len(b)}, os.WriteFile(filepath.Join(blobs, hex.EncodeToString(sum[:])), b, 0o644)
	}
	config, err := putJSON(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diff.Sum(nil))}},
		"config": map[string]any{},
	})
	if err != nil {
		return err
	}
	config["mediaType"] = "application/vnd.oci.image.config.v1+json"
	manifest, err := putJSON(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config,
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest, "size": size}},
	})
	if err != nil {
		return err
	}
	manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
	manifest["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "bench"}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{manifest}})
	if err := os.WriteFile(filepath.Join(tmp, "index.json"), index, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, layout)
}
