//go:build !linux

package ws

import "errors"

// Without a poller a socket's reader stays blocked in read while the peer
// is quiet: read never reports idle, so park is never reached.
const polled = false

func (k *Socket) arm() error { return errors.ErrUnsupported }

func (k *Socket) unpoll() {}

func (k *Socket) readable() bool { return true }
