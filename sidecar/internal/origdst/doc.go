// Package origdst reads the original destination of a TCP connection
// that netfilter redirected to this process (iptables or nftables
// REDIRECT, as the capture rules of an injected pod do): the address and
// port the client dialled before its packets were rewritten to the
// sidecar's listener.
//
// Get asks the kernel with getsockopt SO_ORIGINAL_DST (IPv4, level
// SOL_IP) or IP6T_SO_ORIGINAL_DST (IPv6, level SOL_IPV6) on the accepted
// socket; Parse decodes the sockaddr it returns and is pure, for tests
// and fuzzing.
//
//	dst, err := origdst.Get(conn)
//	switch {
//	case errors.Is(err, origdst.ErrNotRedirected) || dst == local:
//		// dialled the listener itself
//	case err == nil:
//		// dst is where the client meant to go
//	}
package origdst
