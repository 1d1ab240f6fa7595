package gateway

import (
	"net"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries are examined; a
// longer chain is cut (the leftmost entries are the least trustworthy).
const maxForwardedHops = 32

// proxySet is the set of trusted proxy prefixes.
type proxySet []netip.Prefix

func newProxySet(cidrs []string) (proxySet, error) {
	ps := make(proxySet, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := parsePrefix(c)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func (ps proxySet) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses the socket peer of a request ("ip:port").
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	// Unix sockets and test transports may carry a bare address.
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// clientAddr returns the client address: the socket peer, or, when the peer
// is a trusted proxy, the rightmost X-Forwarded-For address that is not a
// trusted proxy itself. Unparsable entries stop the walk (everything to
// their left could be forged), as does the hop limit. When every listed
// address is trusted, the leftmost one is the client.
func (ps proxySet) clientAddr(peer netip.Addr, xff []string) netip.Addr {
	if !ps.contains(peer) || len(xff) == 0 {
		return peer
	}
	client := peer
	hops := 0
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var item string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				item, line = line[j+1:], line[:j]
			} else {
				item, line = line, ""
			}
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			hops++
			if hops > maxForwardedHops {
				return client
			}
			a, ok := parseForwardedAddr(item)
			if !ok {
				return client
			}
			client = a
			if !ps.contains(a) {
				return a
			}
		}
	}
	return client
}

// parseForwardedAddr parses one X-Forwarded-For entry: an address,
// optionally with a port or in brackets.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
