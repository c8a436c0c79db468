// Reference for tools/gopacket-diff: dissects hex packets (one per line on stdin) the way Cilium 1.13
// does with gopacket v1.1.19 (one reused struct per layer type, DecodingLayerParser without
// IgnoreUnsupported) and prints the layer lines, the truncation/error lines and the connection
// summary. A development tool for differential testing; not part of vxmon.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	eth   layers.Ethernet
	ip4   layers.IPv4
	ip6   layers.IPv6
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6
	tcp   layers.TCP
	udp   layers.UDP
	sctp  layers.SCTP
)

func tcpInfo() string {
	var parts []string
	if tcp.SYN {
		parts = append(parts, "SYN")
	}
	if tcp.ACK {
		parts = append(parts, "ACK")
	}
	if tcp.RST {
		parts = append(parts, "RST")
	}
	if tcp.FIN {
		parts = append(parts, "FIN")
	}
	return strings.Join(parts, ", ")
}

func main() {
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &icmp4, &icmp6, &tcp, &udp, &sctp)
	decoded := []gopacket.LayerType{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for sc.Scan() {
		data, _ := hex.DecodeString(strings.TrimSpace(sc.Text()))
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return parser.DecodeLayers(data, &decoded)
		}()
		var srcIP, dstIP net.IP
		var sport, dport, proto, icmpCode string
		hasIP, hasEth := false, false
		for _, t := range decoded {
			switch t {
			case layers.LayerTypeEthernet:
				fmt.Fprintln(w, gopacket.LayerString(&eth))
				hasEth = true
			case layers.LayerTypeIPv4:
				fmt.Fprintln(w, gopacket.LayerString(&ip4))
				hasIP = true
				srcIP, dstIP = ip4.SrcIP, ip4.DstIP
			case layers.LayerTypeIPv6:
				fmt.Fprintln(w, gopacket.LayerString(&ip6))
				hasIP = true
				srcIP, dstIP = ip6.SrcIP, ip6.DstIP
			case layers.LayerTypeICMPv4:
				fmt.Fprintln(w, gopacket.LayerString(&icmp4))
				icmpCode = icmp4.TypeCode.String()
			case layers.LayerTypeICMPv6:
				fmt.Fprintln(w, gopacket.LayerString(&icmp6))
				icmpCode = icmp6.TypeCode.String()
			case layers.LayerTypeTCP:
				fmt.Fprintln(w, gopacket.LayerString(&tcp))
				proto, sport, dport = "tcp", strconv.Itoa(int(tcp.SrcPort)), strconv.Itoa(int(tcp.DstPort))
			case layers.LayerTypeUDP:
				fmt.Fprintln(w, gopacket.LayerString(&udp))
				proto, sport, dport = "udp", strconv.Itoa(int(udp.SrcPort)), strconv.Itoa(int(udp.DstPort))
			case layers.LayerTypeSCTP:
				fmt.Fprintln(w, gopacket.LayerString(&sctp))
				proto, sport, dport = "sctp", strconv.Itoa(int(sctp.SrcPort)), strconv.Itoa(int(sctp.DstPort))
			}
		}
		if parser.Truncated {
			fmt.Fprintln(w, "  Packet has been truncated")
		}
		if err != nil {
			fmt.Fprintln(w, "  Failed to decode layer:", err)
		}
		var sum string
		switch {
		case icmpCode != "":
			sum = fmt.Sprintf("%s -> %s %s", srcIP, dstIP, icmpCode)
		case proto != "":
			sum = fmt.Sprintf("%s -> %s %s", net.JoinHostPort(srcIP.String(), sport), net.JoinHostPort(dstIP.String(), dport), proto)
			if proto == "tcp" {
				sum += " " + tcpInfo()
			}
		case hasIP:
			sum = fmt.Sprintf("%s -> %s", srcIP, dstIP)
		case hasEth:
			sum = fmt.Sprintf("%s -> %s %s", eth.SrcMAC, eth.DstMAC, eth.EthernetType.String())
		default:
			sum = "[unknown]"
		}
		fmt.Fprintln(w, "SUMMARY: "+sum)
		fmt.Fprintln(w, "====")
	}
}
