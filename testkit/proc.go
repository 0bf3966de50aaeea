package testkit

import "github.com/prometheus/procfs"

// ResidentKiB reads a process's resident memory (VmRSS, in KiB).
func ResidentKiB(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, err
	}
	return int64(st.VmRSS / 1024), nil
}
