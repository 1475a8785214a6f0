/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app side of the fast-path tests (bpf_redirect.c, ztunnel.c): a python
 * script run inside a pod, written to /tmp (pods share the host's files).
 */
#ifndef ZM_TEST_FP_ECHO_H
#define ZM_TEST_FP_ECHO_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"

/*
 * The app side of the fast-path tests, run in pod a: each case is
 * SIZE:MODE:HALF:CONNS. MODE nb is a socket with a timeout (non-blocking:
 * on the fast path), blk a blocking one (kept off it: tcp_bpf_recvmsg()
 * would end a blocking wait with EAGAIN). HALF half sends, shuts down
 * writing and reads the echo to EOF; full reads exactly SIZE and closes.
 * Random bytes, so a reordering or a loss anywhere fails the comparison.
 * Other commands: peer_reset, app_reset, fin (see the C side).
 */
static const char fp_script[] =
	"import socket, threading, sys, random, struct, array\n"
	"host, port = sys.argv[1], int(sys.argv[2])\n"
	"def one(size, blocking, half, seed, res, i):\n"
	"    try:\n"
	"        d = random.Random(seed).randbytes(size)\n"
	"        s = socket.create_connection((host, port), None if blocking else 30)\n"
	"        err = []\n"
	"        def snd():\n"
	"            try:\n"
	"                s.sendall(d)\n"
	"                if half: s.shutdown(socket.SHUT_WR)\n"
	"            except Exception as e: err.append('send ' + repr(e))\n"
	"        t = threading.Thread(target=snd); t.start()\n"
	"        r = bytearray()\n"
	"        while half or len(r) < size:\n"
	"            c = s.recv(1 << 20)\n"
	"            if not c: break\n"
	"            r += c\n"
	"        t.join(); s.close()\n"
	"        res[i] = 'ok' if not err and bytes(r) == d else 'FAIL got %d of %d %s' % (len(r), size, err)\n"
	"    except Exception as e:\n"
	"        res[i] = 'FAIL ' + repr(e)\n"
	"cmd = sys.argv[3]\n"
	"if cmd == 'peer_reset':\n"
	"    s = socket.create_connection((host, port), 10); s.sendall(b'r' * (1 << 20))\n"
	"    try:\n"
	"        while s.recv(65536): pass\n"
	"        print('eof')\n"
	"    except Exception as e: print(type(e).__name__)\n"
	"    sys.exit(0)\n"
	"if cmd == 'app_reset':\n"
	"    s = socket.create_connection((host, port), 10); s.sendall(b'a' * (1 << 20))\n"
	"    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)); s.close()\n"
	"    print('reset sent'); sys.exit(0)\n"
	"if cmd == 'fin':\n"
	"    s = socket.create_connection((host, port), 10); r = bytearray()\n"
	"    while True:\n"
	"        c = s.recv(1 << 20)\n"
	"        if not c: break\n"
	"        r += c\n"
	"    want = array.array('I', range(int(sys.argv[4]) // 4)).tobytes()\n"
	"    print('fin after', len(r), 'same' if bytes(r) == want else 'differ'); sys.exit(0)\n"
	"rc = 0\n"
	"for case in sys.argv[3:]:\n"
	"    size, mode, half, conns = case.split(':')\n"
	"    n = int(conns); res = [None] * n\n"
	"    ts = [threading.Thread(target=one, args=(int(size), mode == 'blk', half == 'half', i, res, i)) for i in range(n)]\n"
	"    [t.start() for t in ts]; [t.join() for t in ts]\n"
	"    bad = [r for r in res if r != 'ok']\n"
	"    print(case, 'ok' if not bad else bad[0]); rc |= bool(bad)\n"
	"sys.exit(rc)\n";

static inline void unlink_free(void *p)
{
	unlink(p);
	free(p);
}

/* fp_script into a file the pods see; its path, removed when the test ends. */
static inline const char *write_fp_script(void)
{
	char path[64], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/zm-bpf-fp-%d.py", getpid());
	f = fopen(path, "w");
	if (!f)
		return NULL;
	fputs(fp_script, f);
	fclose(f);
	p = strdup(path);
	if (!p) {
		unlink(path);
		return NULL;
	}
	test_defer(unlink_free, p);	/* after the test: p is valid until then */
	return p;
}

#endif
