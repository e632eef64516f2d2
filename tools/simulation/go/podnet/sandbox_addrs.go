// Added to Go's net package by the sglang-platform sandbox's build (tools/simulation/gobuild.py), not part of Go.
//
// Every pod of the sandbox shares one network namespace. For dynamically linked programs an LD_PRELOAD library
// (tools/simulation/agent_net.py) gives each pod its own addresses; a static Go binary never calls libc, so this
// file does the same inside Go's net package, for the binaries the sandbox runs as pods: a listener on the
// wildcard address binds the pod IP (SANDBOX_POD_IP), one on 127.0.0.1 or ::1 the pod's own loopback address
// (SANDBOX_LOOPBACK); a TCP dial to 127.0.0.1, ::1 or the wildcard goes to the pod's loopback address when
// something listens there on that port, else to the pod IP when something listens there, else unchanged.
// Without both variables (outside a sandbox pod) nothing changes.

package net

import "syscall"

var sandboxPodIP, sandboxLoopback IP

func init() {
	pod, _ := syscall.Getenv("SANDBOX_POD_IP")
	loop, _ := syscall.Getenv("SANDBOX_LOOPBACK")
	p, l := ParseIP(pod).To4(), ParseIP(loop).To4()
	if p != nil && l != nil {
		sandboxPodIP, sandboxLoopback = p, l
	}
}

func sandboxBindIP(ip IP) IP {
	switch {
	case len(ip) == 0 || ip.IsUnspecified():
		return sandboxPodIP
	case ip.IsLoopback():
		return sandboxLoopback
	}
	return nil
}

func sandboxAddrs(laddr, raddr sockaddr) (sockaddr, sockaddr) {
	if sandboxPodIP == nil {
		return laddr, raddr
	}
	switch a := laddr.(type) {
	case *TCPAddr:
		if a != nil {
			if ip := sandboxBindIP(a.IP); ip != nil {
				laddr = &TCPAddr{IP: ip, Port: a.Port}
			}
		}
	case *UDPAddr:
		if a != nil {
			if ip := sandboxBindIP(a.IP); ip != nil {
				laddr = &UDPAddr{IP: ip, Port: a.Port}
			}
		}
	}
	if a, ok := raddr.(*TCPAddr); ok && a != nil && (len(a.IP) == 0 || a.IP.IsUnspecified() || a.IP.IsLoopback()) {
		switch {
		case sandboxListening(sandboxLoopback, a.Port):
			raddr = &TCPAddr{IP: sandboxLoopback, Port: a.Port}
		case sandboxListening(sandboxPodIP, a.Port):
			raddr = &TCPAddr{IP: sandboxPodIP, Port: a.Port}
		}
	}
	return laddr, raddr
}

// sandboxHex is an IPv4 address as /proc/net/tcp writes it: the 32-bit word in host order (little endian here).
func sandboxHex(ip IP) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 8)
	for i := 3; i >= 0; i-- {
		out = append(out, digits[ip[i]>>4], digits[ip[i]&0xF])
	}
	return string(out)
}

// sandboxListening reports whether a TCP socket listens on ip:port (or on the wildcard address), per the
// namespace's /proc/net/tcp and tcp6.
func sandboxListening(ip IP, port int) bool {
	want := sandboxHex(ip)
	for _, table := range []struct{ name, addr, any string }{
		{"/proc/net/tcp", want, "00000000"},
		{"/proc/net/tcp6", "0000000000000000FFFF0000" + want, "00000000000000000000000000000000"},
	} {
		f, err := open(table.name)
		if err != nil {
			continue
		}
		for line, ok := f.readLine(); ok; line, ok = f.readLine() {
			fields := getFields(line)
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			local := splitAtBytes(fields[1], ":")
			if len(local) != 2 || (local[0] != table.addr && local[0] != table.any) {
				continue
			}
			if p, _, ok := xtoi(local[1]); ok && p == port {
				f.close()
				return true
			}
		}
		f.close()
	}
	return false
}
