//! Unit costs on this machine, for the roofline in `perf/RESULTS.md`: what one loopback
//! `write` + `read` costs, what one glommio wake-up across cores costs, and what one message
//! through glommio's channel mesh costs when the receiver is already awake (batched) and when
//! it has to be woken for each message (one at a time). CPU time is the process's (user +
//! system from `getrusage`) divided by the operations, so it is much less sensitive to other
//! load than wall time; both are printed.
//!
//!   cargo build --release --example unit_costs
//!   target/release/examples/unit_costs [N]
//!
//! It is a measuring tool, not part of the gateway.
// A measurement driver, not the gateway: direct system calls through libc, each with its SAFETY comment.
#![allow(unsafe_code)]

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::channels::local_channel;
use glommio::{LocalExecutorBuilder, LocalExecutorPoolBuilder, Placement, PoolPlacement};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn usage() -> libc::rusage {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes into the struct we own.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    }
}

/// User + system seconds of every thread of the process, finished ones included.
fn cpu_seconds() -> f64 {
    let ru = usage();
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Voluntary and involuntary context switches of every thread of the process.
fn ctx_switches() -> (u64, u64) {
    let ru = usage();
    (ru.ru_nvcsw as u64, ru.ru_nivcsw as u64)
}

fn report(name: &str, ops: u64, wall: Duration, cpu: f64, cs: (u64, u64)) {
    println!(
        "{name:<58} {:8.3} us CPU/op {:8.3} us wall/op  {:5.2} vol + {:4.2} invol ctx switches/op",
        cpu * 1e6 / ops as f64,
        wall.as_secs_f64() * 1e6 / ops as f64,
        cs.0 as f64 / ops as f64,
        cs.1 as f64 / ops as f64
    );
}

fn measure(name: &str, ops: u64, f: impl FnOnce()) {
    let (c0, s0, t0) = (cpu_seconds(), ctx_switches(), Instant::now());
    f();
    let (wall, cpu, s1) = (t0.elapsed(), cpu_seconds() - c0, ctx_switches());
    report(name, ops, wall, cpu, (s1.0 - s0.0, s1.1 - s0.1));
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!("{n} operations each; CPU = user + system of the whole process (getrusage)\n");

    // 1. One 400-byte write and the matching read on a loopback TCP pair, one thread: the
    // kernel cost of one event's syscalls on a leg when nothing is batched.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut a = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (mut b, _) = l.accept().expect("accept");
    a.set_nodelay(true).ok();
    let msg = [b'x'; 400];
    let mut buf = [0u8; 4096];
    measure(
        "loopback TCP: write 400 B + read it (2 syscalls)",
        n,
        || {
            for _ in 0..n {
                a.write_all(&msg).expect("write");
                let mut got = 0;
                while got < msg.len() {
                    got += b.read(&mut buf[got..msg.len()]).expect("read");
                }
            }
        },
    );
    let big = vec![b'x'; 400 * 150];
    let mut bigbuf = vec![0u8; 400 * 150];
    let m = n / 150;
    measure(
        "loopback TCP: write 150 x 400 B + read (per 400 B event)",
        m * 150,
        || {
            for _ in 0..m {
                a.write_all(&big).expect("write");
                let mut got = 0;
                while got < big.len() {
                    got += b.read(&mut bigbuf[got..]).expect("read");
                }
            }
        },
    );
    measure("getppid (a syscall that does nothing)", n, || {
        for _ in 0..n {
            // SAFETY: no arguments, no memory.
            std::hint::black_box(unsafe { libc::getppid() });
        }
    });

    // glommio's executor calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) each time it is
    // about to sleep (its reactor, before linking the rings): the kernel interrupts every other
    // CPU that runs a thread of the process. Alone, and with a second thread busy on the other
    // core (as a second shard is under load).
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    // SAFETY: membarrier takes no pointers.
    let registered =
        unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) } == 0;
    if registered {
        measure(
            "membarrier(PRIVATE_EXPEDITED), no other thread running",
            n,
            || {
                for _ in 0..n {
                    // SAFETY: as above.
                    unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) };
                }
            },
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        measure(
            "membarrier(PRIVATE_EXPEDITED), a busy sibling thread (+its CPU)",
            n,
            || {
                for _ in 0..n {
                    // SAFETY: as above.
                    unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) };
                }
            },
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().ok();
    }

    // 2. Two tasks of one executor passing a message back and forth through a local channel:
    // one glommio task switch (no thread wake-up).
    let ex = LocalExecutorBuilder::new(Placement::Fixed(0))
        .spawn(move || async move {
            let (tx1, rx1) = local_channel::new_bounded::<u64>(1);
            let (tx2, rx2) = local_channel::new_bounded::<u64>(1);
            let echo = glommio::spawn_local(async move {
                while let Some(v) = rx1.recv().await {
                    if tx2.send(v).await.is_err() {
                        break;
                    }
                }
            });
            let (c0, s0, t0) = (cpu_seconds(), ctx_switches(), Instant::now());
            for i in 0..n {
                tx1.send(i).await.expect("send");
                rx2.recv().await.expect("recv");
            }
            let (wall, cpu, s1) = (t0.elapsed(), cpu_seconds() - c0, ctx_switches());
            report(
                "glommio: local channel ping-pong, per one-way message",
                2 * n,
                wall,
                cpu,
                (s1.0 - s0.0, s1.1 - s0.1),
            );
            drop(tx1);
            echo.await;
        })
        .expect("executor");
    ex.join().expect("join");

    // 3. The channel mesh between two executors pinned on the two cores, as the gateway's
    // shards use it. Ping-pong: each message finds the other executor parked (a wake-up per
    // message, what a cross-shard hop costs at a moderate rate). Stream: one side sends as
    // fast as it can, the other drains (the hop's cost at full load, amortised wake-ups).
    for (mode, label) in [
        (
            0,
            "mesh ping-pong across 2 cores, per one-way hop (wake-up each)",
        ),
        (
            1,
            "mesh stream across 2 cores, per message (receiver awake)",
        ),
    ] {
        let mesh = MeshBuilder::<u64, _>::full(2, 1024);
        let (c0, s0, t0) = (cpu_seconds(), ctx_switches(), Instant::now());
        let ops = if mode == 0 { 2 * n } else { n };
        LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(2, None))
            .preempt_timer(Duration::from_millis(1))
            .on_all_shards(move || async move {
                let (tx, rx) = mesh.join().await.expect("join");
                let me = tx.peer_id();
                let other = 1 - me;
                if mode == 0 {
                    for i in 0..n {
                        if me == 0 {
                            tx.send_to(other, i).await.expect("send");
                            rx.recv_from(other).await.expect("recv");
                        } else {
                            let v = rx.recv_from(other).await.expect("recv").expect("open");
                            tx.send_to(other, v).await.expect("send");
                        }
                    }
                } else if me == 0 {
                    for i in 0..n {
                        tx.send_to(other, i).await.expect("send");
                    }
                } else {
                    for _ in 0..n {
                        rx.recv_from(other).await.expect("recv");
                    }
                }
            })
            .expect("pool")
            .join_all();
        let (wall, cpu, s1) = (t0.elapsed(), cpu_seconds() - c0, ctx_switches());
        report(label, ops, wall, cpu, (s1.0 - s0.0, s1.1 - s0.1));
    }
}
