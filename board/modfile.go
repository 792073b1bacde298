package board

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// maxModuleSize bounds a decompressed module: the largest of Debian's
// (amdgpu) is some 40 MiB.
const maxModuleSize = 256 << 20

// loadModuleFile loads one module file into the kernel. A plain .ko goes
// to finit_module(2). A compressed one (.ko.xz, .ko.zst, .ko.gz, as
// Debian 13 ships every module) is handed to the kernel to decompress
// (MODULE_INIT_COMPRESSED_FILE, Linux 5.17 with CONFIG_MODULE_DECOMPRESS);
// a kernel that cannot gets it decompressed here, read through a buffer:
// u-root's kmodule reads a .ko.xz one byte per read(2), which under QEMU
// TCG made loading overlay.ko.xz take 20 s. A module already loaded is a
// success.
func loadModuleFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	compressed := strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz")
	if !compressed {
		err = unix.FinitModule(int(f.Fd()), "", 0)
	} else {
		err = unix.FinitModule(int(f.Fd()), "", unix.MODULE_INIT_COMPRESSED_FILE)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			err = initCompressed(f, path)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	return nil
}

// initCompressed decompresses a module and loads it with init_module(2).
func initCompressed(f *os.File, path string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	image, err := decompressModule(f, path)
	if err != nil {
		return err
	}
	return unix.InitModule(image, "")
}

// decompressModule decompresses a module file by its suffix, reading it
// through a 64 KiB buffer, to at most maxModuleSize bytes.
func decompressModule(f io.Reader, path string) ([]byte, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".xz"):
		x, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", path, err)
		}
		r = x
	case strings.HasSuffix(path, ".zst"):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModuleSize))
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", path, err)
		}
		defer z.Close()
		r = z
	case strings.HasSuffix(path, ".gz"):
		g, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", path, err)
		}
		r = g
	default:
		return nil, fmt.Errorf("decompress %s: not .xz, .zst or .gz", path)
	}
	image, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", path, err)
	}
	if len(image) > maxModuleSize {
		return nil, fmt.Errorf("decompress %s: larger than %d MiB", path, maxModuleSize>>20)
	}
	return image, nil
}
