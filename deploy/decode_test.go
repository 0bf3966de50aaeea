package deploy

import (
	"errors"
	"net"
	"net/netip"

	kjson "sigs.k8s.io/json"
)

// decodeStrict decodes JSON as the API server does with strict field
// validation: an unknown field, a field in the wrong case or a duplicate
// field is an error.
func decodeStrict(data []byte, into any) error {
	strict, err := kjson.UnmarshalStrict(data, into)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func validIPOrCIDR(s string) bool {
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

func validAddr(v string) error {
	_, _, err := net.SplitHostPort(v)
	return err
}
