package sidecar

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// dropStartupPages takes the binary's read-only pages (its code, read-only
// data and symbol tables) out of the process's page tables; those it uses
// again come back as it touches them. It returns how many bytes of
// mappings it advised.
//
// Why: package initialisation (protobuf's registry reads the descriptors
// of every linked message type), the first decode of each xDS type, flag
// parsing and TLS setup touch most of the 18 MB binary once, and the
// kernel maps 64 KiB around each touched page (fault-around); an idle
// sidecar then counts about 17 MB of the binary in its RSS, though it
// runs a small part of it. The pages stay in the page cache, shared by
// every process of the binary, and those the sidecar uses come back as
// minor faults (no I/O while they are cached); the idle RSS then holds
// what the sidecar runs. Writable mappings (data, bss) and the heap are
// not touched: MADV_DONTNEED on a private writable mapping would discard
// its contents.
func dropStartupPages() (int, error) {
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &self); err != nil {
		return 0, fmt.Errorf("stat /proc/self/exe: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	advised := 0
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// ADDR-ADDR PERMS OFFSET DEV INODE PATH
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasPrefix(f[5], "/") || len(f[1]) < 2 || f[1][0] != 'r' || f[1][1] != '-' {
			continue
		}
		if ino, err := strconv.ParseUint(f[4], 10, 64); err != nil || ino != self.Ino {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); e != 0 {
			return advised, fmt.Errorf("madvise %s: %w", f[0], e)
		}
		advised += int(end - start)
	}
	return advised, sc.Err()
}
