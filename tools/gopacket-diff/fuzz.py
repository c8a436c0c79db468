"""Random Ethernet frames (IPv4/IPv6 with options and extension headers, TCP/UDP/SCTP/ICMP, IP-in-IP,
VLAN/ARP/LLC/unknown EtherTypes), truncated and mutated, as hex lines and as a raw event stream of trace
v1 events (tools/raw2vxrec.py framing). Usage: fuzz.py SEED COUNT OUTDIR"""
import random, struct, subprocess, sys
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
out = sys.argv[3] if len(sys.argv) > 3 else '.'
rnd = random.Random(seed)
def rb(n): return bytes(rnd.getrandbits(8) for _ in range(n))
def pick(*xs): return rnd.choice(xs)
PORTS=[53,80,443,636,502,123,67,68,546,547,5060,6343,3784,2152,623,1812,40000,5353,1,0,65535,22,8080,3283]
def tcp(payload_len=None):
    doff = pick(5,5,5,6,8,10,15,4,3)
    opts_len = max(doff*4-20,0)
    kinds=[0,1,2,3,4,5,8,30,254,2,2,8]
    opts=b''
    while len(opts)<opts_len:
        k=rnd.choice(kinds)
        if k in (0,1): opts+=bytes([k]); continue
        l=pick(2,3,4,6,10,1,0,40) if rnd.random()<0.2 else {2:4,3:3,4:2,5:10,8:10}.get(k,4)
        opts+=bytes([k,l])+rb(max(l-2,0))
    opts=opts[:opts_len]
    flags=rnd.getrandbits(8)
    hdr=struct.pack('!HHIIBBHHH',pick(*PORTS),pick(*PORTS),rnd.getrandbits(32),rnd.getrandbits(32),(doff<<4)|rnd.getrandbits(1),flags,rnd.getrandbits(16),rnd.getrandbits(16),rnd.getrandbits(16))
    return hdr+opts+rb(pick(0,0,3,20))
def udp():
    pl=rb(pick(0,2,12,30))
    ln=pick(8+len(pl),8+len(pl),0,5,1000,8)
    return struct.pack('!HHHH',pick(*PORTS),pick(*PORTS),ln,rnd.getrandbits(16))+pl
def icmp4(): return bytes([pick(0,3,5,8,11,12,13,42,9),pick(0,1,2,3,4,15,16,99)])+rb(6)+rb(pick(0,4,56))
def icmp6(): return bytes([pick(1,2,3,4,128,129,130,131,132,133,134,135,136,137,143,200),pick(0,1,2,7)])+rb(2)+rb(pick(0,4,20,24,28))
def sctp(): return struct.pack('!HHII',pick(*PORTS,38412,5000),pick(*PORTS),rnd.getrandbits(32),rnd.getrandbits(32))+rb(pick(0,16))
def l4(proto):
    return {6:tcp,17:udp,1:icmp4,58:icmp6,132:sctp}.get(proto, lambda: rb(pick(0,8,20)))()
def ipv4(depth=0):
    proto=pick(6,17,1,132,58,2,47,50,0,59,253,4,41)
    if depth>0 and proto in (4,41): proto=6
    ihl=pick(5,5,5,6,7,15,4,3)
    optlen=max(ihl*4-20,0)
    opts=b''
    while len(opts)<optlen:
        t=pick(0,1,7,68,130,148,1)
        if t in (0,1): opts+=bytes([t]); continue
        l=pick(4,3,2,1,8,40)
        opts+=bytes([t,l])+rb(max(l-2,0))
    opts=opts[:optlen]
    inner = ipv4(1) if proto==4 else ipv6(1) if proto==41 else l4(proto)
    total=ihl*4+len(inner)
    tl=pick(total,total,total,0,total+30,10,max(total-5,0))
    ff=pick(0x4000,0,0x2000,0x2005,0x0010,0x8000)
    hdr=struct.pack('!BBHHHBBH4s4s',(pick(4,4,4,6)<<4)|(ihl&15),rnd.getrandbits(8),tl,rnd.getrandbits(16),ff,64,proto,rnd.getrandbits(16),rb(4),rb(4))
    return hdr+opts+inner
def ipv6(depth=0):
    nh=pick(6,17,58,132,0,43,44,60,59,51,253,41,4)
    if depth>0 and nh in (4,41): nh=17
    body=b''
    if nh==0:
        inner_nh=pick(58,17,6,0,43)
        hlen=pick(0,0,1)
        opts=b''
        target=hlen*8+6
        while len(opts)<target:
            t=pick(0,1,5,0xc2,1)
            if t==0: opts+=b'\x00'; continue
            l=pick(0,2,4,6) if t!=0xc2 else pick(4,4,2)
            opts+=bytes([t,l])+rb(l)
        opts=opts[:target]
        body=bytes([inner_nh,hlen])+opts+l4(inner_nh if inner_nh!=43 else 6)
    else:
        body= ipv4(1) if nh==4 else ipv6(1) if nh==41 else l4(nh)
    pl=pick(len(body),len(body),len(body),0,len(body)+10,3)
    hdr=struct.pack('!IHBB16s16s',(6<<28)|rnd.getrandbits(20)|(rnd.getrandbits(8)<<20),pl,nh,rnd.getrandbits(8),rb(16),rb(16))
    if rnd.random()<0.1: hdr=hdr[:8]+bytes(10)+b'\xff\xff'+hdr[20:]
    return hdr+body
def frame():
    et=pick(0x0800,0x0800,0x86dd,0x86dd,0x0806,0x8100,0x88a8,0x6558,0x88cc,0x8847,0x0040,0x9999,0x0600,0x05ff,0x888e)
    if et==0x0800: body=ipv4()
    elif et==0x86dd: body=ipv6()
    elif et==0x6558: body=rb(6)+rb(6)+b'\x08\x00'+ipv4()
    else: body=rb(pick(0,4,28,46))
    f=rb(6)+rb(6)+struct.pack('!H',et)+body
    if rnd.random()<0.3: f+=bytes(pick(2,6,20))
    return f
pkts=[]
for i in range(N):
    f=frame()
    if rnd.random()<0.3: f=f[:rnd.randrange(0,len(f)+1)]
    if rnd.random()<0.25 and len(f)>14:
        b=bytearray(f)
        for _ in range(rnd.randrange(1,6)):
            k=rnd.randrange(14,len(b)); b[k]=rnd.getrandbits(8)
        f=bytes(b)
    pkts.append(f[:1400])
open(f'{out}/pkts.hex','w').write('\n'.join(p.hex() for p in pkts)+'\n')
raw=b''
for p in pkts:
    hdr=struct.pack('<BBHIIHHIIHBBI16s',4,3,0,0,len(p),len(p),1,0,0,0,0,0,0,bytes(16))
    s=hdr+p
    raw+=struct.pack('<II',0,len(s))+s
open(f'{out}/pkts.raw','wb').write(raw)
