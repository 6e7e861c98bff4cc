# Reload under traffic: 50 "nginx -s reload" (AMON_RELOADS=N for more)
# against two workers while three SDKs (two fake SDKs, one of them slow
# to ack, and the C SDK's example program) send heartbeats and events and
# four panels keep sending actions, fresh msg_ids and repeated ones.
# Checked: the old workers exit within a bound after every reload and no
# more than one old generation ever runs; every panel of an old worker is
# closed with 1012 and reconnects; every action gets a final answer, none
# is executed twice (counted at the SDKs), the dedupe state survives every
# reload; the workers' RSS and open fds after the last reload are those
# after reload 10 (within a stated tolerance), the master's fds do not
# change; at the end every msg_id sent is asked again and is a duplicate.
# AMON_RELOAD_STORE=redis keeps the dedupe table in a private redis-server
# (t/241 runs that); bench/reload-traffic.sh runs hundreds of reloads.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(children cmdline proc_mem);
use List::Util qw(max sum0);
use Mojo::IOLoop;
use POSIX qw(WNOHANG);
use Scalar::Util qw(refaddr);
use Time::HiRes qw(time);

my $RELOADS = $ENV{AMON_RELOADS} // 50;
my $PANELS = 4;
my $WORKERS = 2;
my $EXIT_BOUND = tscale(5);        # an old worker's exit after a reload
my $RSS_TOLERANCE_KB = 2048;       # + 10 %: see sample_growth()
my $REASON = 'agent reloading or stopping: reconnect';
my $EXAMPLE = "$Test::AMonitor::REPO/build/sdk/amonitor-sdk-example";
# the figures of the bench script (bench/reload-traffic.sh) start with this
my $FIG = 'reload-figures:';

if (!-x $EXAMPLE) {
    fail("$EXAMPLE is built (make build-sdk)");
    done_testing();
    exit;
}

my $t = Test::AMonitor->new(workers => $WORKERS, panel_snapshot => 1);
if ($t->single_process) {
    plan skip_all => 'reloads need a master process';
}

my $redis;
if (($ENV{AMON_RELOAD_STORE} // '') eq 'redis') {
    require Test::AMonitor::Redis;
    $redis = Test::AMonitor::Redis->new;
    if (!$redis->start) {
        fail('a private redis-server starts');
        done_testing();
        exit;
    }
}

my $sa = fake_sdk(port => $t->port(1), target_id => 'a',
    heartbeat_interval => 0.2);
my $sb = fake_sdk(port => $t->port(2), target_id => 'b',
    heartbeat_interval => 0.3, ack_delay => 0.1);
my $ex = start_example($t->port(3));

$t->write_config(
    http_config => join("\n",
        'amonitor_zone amonitor 8m;',
        'amonitor_reconnect 50ms 300ms;',
        'amonitor_ack_timeout 2s;',
        'amonitor_ack_late_window 3s;',
        'amonitor_audit_log audit.log;',
        ($redis ? ('amonitor_redis ' . $redis->addr . ' prefix=reload:;') : ()),
        'amonitor_target a ws://127.0.0.1:%%PORT_1%%/;',
        'amonitor_target b ws://127.0.0.1:%%PORT_2%%/;',
        'amonitor_target c ws://127.0.0.1:%%PORT_3%%/;'),
    config => join("\n",
        'location = /ws/panel { amonitor_panel on; }',
        'location = /amonitor/status { amonitor_status; }',
        'location = /metrics { amonitor_metrics; }'),
)->run;

ok($sa->wait_connections($WORKERS) && $sb->wait_connections($WORKERS),
    'both workers are connected to the fake SDKs');
ok(wait_for(sub { example_connections() >= $WORKERS }, tscale(5)),
    'and to the C SDK example');


# --- the C SDK's example program ---------------------------------------------

sub start_example {
    my ($port) = @_;
    my $log = $t->prefix . '/sdk-c.log';
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open(STDOUT, '>', $log) or POSIX::_exit(126);
        open(STDERR, '>&', \*STDOUT);
        exec($EXAMPLE, '--port', $port, '--target-id', 'c', '--interval',
            '0.5', '--event-interval', '0.2') or POSIX::_exit(127);
    }
    my $e = { pid => $pid, log => $log };
    wait_for(sub { example_log($e) =~ /serving ws:/ }, tscale(5));
    return $e;
}

sub example_log {
    my ($e) = @_;
    open(my $fh, '<', $e->{log}) or return '';
    local $/;
    return <$fh> // '';
}

# agent connections to the example that are established (nginx's side of
# them in /proc/net/tcp: remote port = the example's)
sub example_connections {
    my $fh;
    my $port = sprintf('%04X', $t->port(3));
    open($fh, '<', '/proc/net/tcp') or return 0;
    my $n = grep { /^\s*\d+: [0-9A-F]{8}:[0-9A-F]{4} [0-9A-F]{8}:$port 01 / }
        <$fh>;
    close $fh;
    return $n;
}

# the connections the example accepted, from its log
sub example_accepted {
    my $n = () = example_log($ex) =~ /agent connected from/g;
    return $n;
}

# how many times the example ran each msg_id
sub example_executed {
    my %n;
    my $log = example_log($ex);
    $n{$1}++ while $log =~ /action restart \(msg_id (\S+),/g;
    return \%n;
}

sub stop_example {
    return unless $ex->{pid};
    kill 'TERM', $ex->{pid};
    wait_for(sub { waitpid($ex->{pid}, WNOHANG) != 0 }, tscale(5))
        or do { kill 'KILL', $ex->{pid}; waitpid($ex->{pid}, 0) };
    $ex->{pid} = undef;
}


# --- processes: workers over time, RSS and fds -------------------------------

# every worker of the master, the ones shutting down included
sub all_workers {
    my @w = grep { cmdline($_) =~ /worker process/ }
        children($t->master_pid);
    return @w;
}

my %W = (max => 0, samples => 0);
my $sampler = Mojo::IOLoop->recurring(0.05 => sub {
    my $n = () = all_workers();
    $W{samples}++;
    $W{max} = $n if $n > $W{max};
});

# (sockets, other descriptors) of a process
sub fd_counts {
    my ($pid) = @_;
    my ($dh, $sock, $other) = (undef, 0, 0);
    opendir($dh, "/proc/$pid/fd") or return (undef, undef);
    for my $fd (grep { /^\d+$/ } readdir $dh) {
        my $to = readlink("/proc/$pid/fd/$fd") // next;
        if ($to =~ /^socket:/) { $sock++ } else { $other++ }
    }
    closedir $dh;
    return ($sock, $other);
}

# RSS and fds of the workers and the master, once every panel and every
# SDK connection of the new workers is open
sub sample {
    my ($n) = @_;
    my %s = (reload => $n);
    for my $pid (sort { $a <=> $b } $t->worker_pids) {
        my ($sock, $other) = fd_counts($pid);
        my $m = proc_mem($pid);
        $s{rss} += $m->{VmRSS};
        $s{anon} += $m->{RssAnon};
        $s{shmem} += $m->{RssShmem};
        $s{sock} += $sock;
        $s{other} += $other;
        push @{ $s{each} }, "$pid rss=$m->{VmRSS}kB anon=$m->{RssAnon}kB "
            . "shmem=$m->{RssShmem}kB fds=$sock+$other";
    }
    my ($msock, $mother) = fd_counts($t->master_pid);
    my $mm = proc_mem($t->master_pid);
    $s{master_fds} = $msock + $mother;
    $s{master_rss} = $mm->{VmRSS};
    $s{master_anon} = $mm->{RssAnon};
    note(sprintf('%s reload=%d workers_rss_kb=%d workers_anon_kb=%d '
        . 'workers_shmem_kb=%d worker_sockets=%d worker_other_fds=%d '
        . 'master_rss_kb=%d master_anon_kb=%d master_fds=%d (%s)', $FIG,
        $n, @s{qw(rss anon shmem sock other master_rss master_anon
        master_fds)}, join(', ', @{ $s{each} })));
    return \%s;
}


# --- panels and actions -------------------------------------------------------

my @SLOTS = map { { n => $_, p => undef } } 1 .. $PANELS;
my @ALL_PANELS;        # every panel object ever opened
my %SENT;              # msg_id -> { target, sends => [[panel, slot]] }
my %FINALS;            # msg_id -> [ { panel, kind, json } ] final replies
my %UNRESOLVED;        # msg_id -> slot number, no final reply yet
my %SEEN;              # panel -> messages looked at
my @ACKED;             # msg_ids first acked with success (repeat them)
my %REPEATED;          # msg_id -> repeats sent
my %TRAFFIC;           # target -> heartbeats and events seen by panels
my $CLOSED_BY_US = {}; # panels the test closed itself
my $sending = 1;

# msg_id -> how many times the SDKs (both fake ones and the C example)
# ran it so far
sub sdk_runs {
    my $c = example_executed();
    return { map { $_ => $sa->executed($_) + $sb->executed($_)
        + ($c->{$_} // 0) } keys %SENT };
}

sub open_slot {
    my ($slot) = @_;
    my ($p) = panel_try_connect($t->ws_url('/ws/panel'),
        name => "panel $slot->{n}", timeout => tscale(5));
    return 0 unless $p;
    $slot->{p} = $p;
    push @ALL_PANELS, $p;
    # a client that lost its connection asks again with the same msg_id
    for my $id (sort grep { $UNRESOLVED{$_} == $slot->{n} }
        keys %UNRESOLVED)
    {
        send_action($slot, $id, $SENT{$id}{target});
    }
    return 1;
}

sub send_action {
    my ($slot, $id, $target) = @_;
    my $s = $SENT{$id} //= { target => $target, sends => [] };
    push @{ $s->{sends} }, [refaddr($slot->{p}), $slot->{n}];
    $slot->{p}->send_json({ msg_id => $id, type => 'action',
        target_id => $target, payload => { action => 'restart' } });
}

# look at what the panels received since the last call
my %SCANNED;           # panel -> closed and looked at to the end
sub scan {
    for my $p (@ALL_PANELS) {
        next if $SCANNED{ refaddr $p };
        my $open = $p->is_open;
        my @m = $p->messages;
        my $from = $SEEN{ refaddr $p } // 0;
        $SEEN{ refaddr $p } = scalar @m;
        for my $m (@m[$from .. $#m]) {
            scan_one($p, $m->{json});
        }
        $SCANNED{ refaddr $p } = 1 unless $open;
    }
}

sub scan_one {
    my ($p, $j) = @_;
    return unless ref $j eq 'HASH';
    my $type = $j->{type} // '';
    my $pl = ref $j->{payload} eq 'HASH' ? $j->{payload} : {};
    if ($type eq 'heartbeat' || $type eq 'event') {
        $TRAFFIC{ $j->{target_id} // '?' }{$type}++;
        return;
    }
    return unless $type eq 'action_ack' || $type eq 'error';
    my $id = $pl->{action_msg_id} // return;
    return unless $SENT{$id} && $pl->{final};
    my $kind = $type eq 'error' ? 'error ' . ($pl->{code} // '?')
        : $pl->{duplicate} ? 'duplicate ' . ($pl->{state} // '?')
        : $pl->{success} ? 'ack' : 'ack failure';
    push @{ $FINALS{$id} }, { panel => refaddr($p), kind => $kind,
        json => $j };
    delete $UNRESOLVED{$id};
    push @ACKED, $id if $kind eq 'ack' && !$REPEATED{$id};
}

# every 30 ms one panel sends an action: mostly a fresh msg_id to one of
# the three targets, every sixth time a msg_id that was acked already
my $tick = 0;
my $sender = Mojo::IOLoop->recurring(0.03 => sub {
    return unless $sending;
    scan();
    my $slot = $SLOTS[ $tick++ % @SLOTS ];
    return unless $slot->{p} && $slot->{p}->is_open;
    if ($tick % 6 == 0 && @ACKED) {
        my $id = $ACKED[ int rand @ACKED ];
        # only once its result is in redis (before, "pending" is right)
        return if $redis && !$redis->done("reload:$id");
        $REPEATED{$id}++;
        send_action($slot, $id, $SENT{$id}{target});
        return;
    }
    my $id = 'r-' . uuid4();
    $UNRESOLVED{$id} = $slot->{n};
    send_action($slot, $id, (qw(a a b c))[ $tick % 4 ]);
});

my $events = Mojo::IOLoop->recurring(0.1 => sub {
    $sa->emit_event('tick', { t => time });
    $sb->emit_event('tick', { t => time });
});

# reopen every closed slot; true once all are open
sub service_slots {
    my $all = 1;
    for my $slot (@SLOTS) {
        next if $slot->{p} && $slot->{p}->is_open;
        $all = 0 unless open_slot($slot);
    }
    return $all;
}

# what an operator types; its output, $? set
sub nginx_s_reload {
    my ($bin, $prefix) = ($t->binary, $t->prefix);
    return `"$bin" -p "$prefix/" -c "$prefix/nginx.conf" -s reload 2>&1`;
}

sub sdk_connections_complete {
    return $sa->connections == $WORKERS && $sb->connections == $WORKERS
        && example_connections() == $WORKERS;
}


# --- the run ------------------------------------------------------------------

# one action before all reloads, repeated after the last
my $pinned = 'pinned-' . uuid4();
{
    my $p = $t->panel('/ws/panel');
    $p->send_json({ msg_id => $pinned, type => 'action', target_id => 'a',
        payload => { action => 'restart' } });
    my $m = $p->recv_type('action_ack', action_msg_id => $pinned);
    ok($m && !$m->{json}{payload}{duplicate}, 'an action before the reloads '
        . 'is acked as a first execution');
    $p->close(1000);
}

ok(wait_for(\&service_slots, tscale(5)), "$PANELS panels connected");

my (@exit_times, @bad_reloads, @unclosed, %samples);
my $t_start = time;
for my $n (1 .. $RELOADS) {
    # every panel and SDK connection is on the current workers
    wait_for(sub { service_slots() && sdk_connections_complete() },
        tscale(10)) or push @bad_reloads, "$n: not reconnected in time";
    sleep_loop(0.15);    # traffic on the current workers
    my @panels = map { $_->{p} } @SLOTS;
    my %old = map { $_ => 1 } all_workers();
    my $t0 = time;
    my $out = nginx_s_reload();
    if ($? != 0) {
        push @bad_reloads, "$n: nginx -s reload: $out";
        last;
    }
    # panels reconnect while the old workers go away
    my $gone = wait_for(sub {
        service_slots();
        my @now = all_workers();
        return !grep { $old{$_} } @now;
    }, $EXIT_BOUND);
    push @exit_times, time - $t0;
    if (!$gone) {
        push @bad_reloads, sprintf('%d: old workers %s still there after '
            . '%.1fs', $n, join(',', grep { $old{$_} } all_workers()),
            $EXIT_BOUND);
        last;
    }
    # an exiting worker sends its close frame and closes the socket at
    # once: it may be gone before this loop has read what it sent
    wait_for(sub { !grep { $_->is_open } @panels }, tscale(2));
    push @unclosed, $n if grep { $_->is_open } @panels;
    if ($n == 10 || $n == $RELOADS || ($RELOADS > 50 && $n % 50 == 0)) {
        wait_for(sub { service_slots() && sdk_connections_complete() },
            tscale(10));
        sleep_loop(0.3);    # connections of the old workers all ended
        $samples{$n} = sample($n);
    }
}
my $took = time - $t_start;

is(scalar(@exit_times), $RELOADS, "$RELOADS reloads done")
    or diag(join("\n", @bad_reloads));
is_deeply(\@bad_reloads, [], 'every reload: new workers, the old ones gone '
    . "within ${EXIT_BOUND}s");
note(sprintf('%s %d reloads in %.1fs; old workers gone after %.2fs at most, '
    . '%.2fs on average', $FIG, scalar @exit_times, $took,
    max(@exit_times, 0), sum0(@exit_times) / max(1, scalar @exit_times)));
ok($W{samples} > $RELOADS, "worker processes counted $W{samples} times");
ok($W{max} <= 2 * $WORKERS, "at most $W{max} worker processes at once "
    . '(the new ones and one old generation)');
is_deeply(\@unclosed, [], 'every panel of the old workers was closed');

# after the last reload: everything settles, then the pinned action again
ok(wait_for(sub { service_slots() && sdk_connections_complete() },
    tscale(10)), 'panels and SDKs connected to the last workers');
is(scalar(all_workers()), $WORKERS, "$WORKERS workers in the end");
is(scalar($t->child_pids), $WORKERS, 'and no other child of the master');

{
    my $p = $t->panel('/ws/panel');
    $p->send_json({ msg_id => $pinned, type => 'action', target_id => 'a',
        payload => { action => 'restart' } });
    my $m = $p->recv_type('action_ack', action_msg_id => $pinned);
    is($m && $m->{json}{payload}{message}, 'duplicate ignored',
        "the action sent before $RELOADS reloads: \"duplicate ignored\"");
    is($m && $m->{json}{payload}{original}{message}, 'ok',
        'with its original result');
    $CLOSED_BY_US->{ refaddr $p } = 1;
    $p->close(1000);
}

# stop sending; every action gets its answer (asking again where a panel
# lost its connection first)
$sending = 0;
wait_for(sub { service_slots(); scan(); !%UNRESOLVED }, tscale(15));
scan();
is(scalar(keys %UNRESOLVED), 0, 'every action has a final answer')
    or diag('unresolved: ' . join(' ', sort keys %UNRESOLVED));
Mojo::IOLoop->remove($_) for $sender, $events, $sampler;


# --- what the panels saw ------------------------------------------------------

my %closes;
for my $p (@ALL_PANELS) {
    next if $p->is_open || $CLOSED_BY_US->{ refaddr $p };
    $closes{ ($p->close_code // 'none') . ' ' . ($p->close_reason // '') }++;
}
is_deeply([grep { $_ ne "1012 $REASON" } keys %closes], [],
    'every panel closure was a 1012 with the reason that says to reconnect')
    or diag(explain(\%closes));
ok(($closes{"1012 $REASON"} // 0) >= $RELOADS * $PANELS,
    sprintf('%d closures for %d reloads of %d panels',
        $closes{"1012 $REASON"} // 0, $RELOADS, $PANELS));

my (%kinds, @twice_final, @twice_first, @repeat_not_dup);
for my $id (keys %SENT) {
    my $f = $FINALS{$id} // [];
    $kinds{ $_->{kind} }++ for @$f;
    # per panel: no more final replies than the msg_id was sent on it
    my (%sends, %finals);
    $sends{ $_->[0] }++ for @{ $SENT{$id}{sends} };
    $finals{ $_->{panel} }++ for @$f;
    push @twice_final, $id
        if grep { $finals{$_} > ($sends{$_} // 0) } keys %finals;
    my @first = grep { $_->{kind} =~ /^ack/ } @$f;
    push @twice_first, $id if @first > 1;
    # acked once, so every later answer is a duplicate of a done action
    push @repeat_not_dup, $id
        if $REPEATED{$id} && grep { $_->{kind} ne 'duplicate done' }
            @$f[1 .. $#$f];
}
note("$FIG " . scalar(keys %SENT) . ' msg_ids, outcomes: '
    . join(', ', map { "$_=$kinds{$_}" } sort keys %kinds));
ok(keys %SENT > $RELOADS * 5, scalar(keys %SENT) . ' msg_ids sent');
ok(scalar(keys %REPEATED) > 0, scalar(keys %REPEATED)
    . ' acked msg_ids sent again');
ok(($kinds{ack} // 0) > $RELOADS * 3, ($kinds{ack} // 0) . ' acked');
is_deeply(\@twice_final, [], 'no panel got two final answers for one send');
is_deeply(\@twice_first, [], 'no msg_id acked as a first execution twice');
is_deeply(\@repeat_not_dup, [],
    'every repeat of an acked msg_id was answered "duplicate ignored" '
    . '(state done)');
for my $target (qw(a b c)) {
    ok(($TRAFFIC{$target}{heartbeat} // 0) > $RELOADS
        && ($TRAFFIC{$target}{event} // 0) > $RELOADS,
        "panels saw heartbeats and events of $target throughout")
        or diag(explain($TRAFFIC{$target}));
}


# --- every msg_id again -------------------------------------------------------

# Asked again once the run is over (with Redis, after the lease of any
# claim an exiting worker left open), every msg_id is a duplicate: only
# those whose first answer released the claim may run again.  With Redis,
# so may one that no SDK ran and that was only ever answered "pending":
# an old worker claimed it and exited before it went out; the retry
# reached a new worker before that claim was released at the old one's
# exit, and a retry now runs it, once.  (Had that release not been
# written, the claim would be lost after its lease, and the retry a
# duplicate that failed: also "duplicate ignored".)
my %released = map { ("error $_" => 1) }
    qw(TARGET_UNAVAILABLE RATE_LIMITED INTERNAL);
my %RAN_AT_END;    # msg_id -> run by the last send (an orphaned claim)
{
    sleep_loop(tscale(6)) if $redis;    # lease=5s, the default
    # what the SDKs ran before the msg_ids go again
    my $before = sdk_runs();
    my $orphaned = sub {
        my ($id) = @_;
        my @k = map { $_->{kind} } @{ $FINALS{$id} // [] };
        return $redis && @k && !grep({ $_ ne 'duplicate pending' } @k)
            && !$before->{$id};
    };
    my $p = $t->panel('/ws/panel');
    my (%again, @not_dup);
    my @ids = sort grep { !$released{ $FINALS{$_}[0]{kind} // '' } }
        keys %SENT;
    for my $id (@ids) {
        $p->send_json({ msg_id => $id, type => 'action',
            target_id => $SENT{$id}{target},
            payload => { action => 'restart' } });
    }
    wait_for(sub {
        for my $m ($p->messages) {
            my $pl = ref $m->{json} eq 'HASH' ? $m->{json}{payload} : undef;
            next unless ref $pl eq 'HASH' && $pl->{final}
                && defined $pl->{action_msg_id};
            $again{ $pl->{action_msg_id} } = $pl;
        }
        return keys %again >= @ids;
    }, tscale(10));
    is(scalar(keys %again), scalar(@ids), scalar(@ids) . ' msg_ids sent '
        . 'again at the end are all answered');
    for my $id (@ids) {
        my $pl = $again{$id} // next;
        next if ($pl->{message} // '') =~ /^duplicate ignored/;
        if ($pl->{success} && $orphaned->($id)) {
            $RAN_AT_END{$id} = 1;
            next;
        }
        push @not_dup, "$id: " . ($pl->{code} // $pl->{message} // '?');
    }
    note(scalar(keys %RAN_AT_END) . ' msg_ids only ever answered '
        . '"pending" before ran at the end: ' . join(' ', sort keys %RAN_AT_END))
        if %RAN_AT_END;
    is_deeply(\@not_dup, [], 'each of them: "duplicate ignored"');
    $CLOSED_BY_US->{ refaddr $p } = 1;
    $p->close(1000);
    sleep_loop(0.3);    # anything executed again has reached the SDKs
}


# --- what the SDKs saw --------------------------------------------------------

my $ran = sdk_runs();
my (@twice_run, @acked_not_run);
for my $id (keys %SENT) {
    my $runs = $ran->{$id};
    push @twice_run, "$id ($runs)" if $runs > 1;
    push @acked_not_run, $id
        if $runs != 1 && ($RAN_AT_END{$id}
            || grep { $_->{kind} eq 'ack' } @{ $FINALS{$id} // [] });
}
is_deeply(\@twice_run, [], 'no msg_id executed twice at the SDKs');
is_deeply(\@acked_not_run, [], 'every first ack stands for one execution');
for my $sdk ([a => $sa], [b => $sb]) {
    my ($name, $s) = @$sdk;
    my %codes;
    $codes{"$_->{code} " . ($_->{reason} // '')}++ for $s->closes;
    is($s->accepted, $WORKERS * ($RELOADS + 1), "SDK $name: one connection "
        . 'per worker and generation, none more');
    is_deeply([keys %codes], ['1001 agent shutting down'],
        "SDK $name: every old connection closed with 1001")
        or diag(explain(\%codes));
}
is(example_accepted(), $WORKERS * ($RELOADS + 1), 'the C SDK example: one '
    . 'connection per worker and generation, none more');


# --- RSS and fds --------------------------------------------------------------

SKIP: {
    skip 'fewer than 10 reloads', 6 unless $samples{10} && $RELOADS > 10;
    my ($s10, $sN) = ($samples{10}, $samples{$RELOADS});
    # The workers after reload N are forks of the same master as those
    # after reload 10 and have handled the same traffic: their private
    # memory may differ by allocator noise (tolerance: 10 % + 2 MiB), not
    # by what a leak of each reload adds up to.  Their shared pages (the
    # zone) grow with the dedupe table, which keeps every msg_id of the
    # run (amonitor_dedupe_ttl 24h).
    SKIP: {
        # ASan keeps freed memory in its quarantine: RSS says nothing there
        skip 'RSS under a sanitizer', 3 if $ENV{TEST_AMON_SANITIZER};
        my $bound = int($s10->{anon} * 1.10) + $RSS_TOLERANCE_KB;
        ok($sN->{anon} <= $bound, "workers' private RSS after reload "
            . "$RELOADS ($sN->{anon} kB) within 10 % + 2 MiB of reload 10's "
            . "($s10->{anon} kB)");
        my $mbound = int($s10->{master_rss} * 1.10) + $RSS_TOLERANCE_KB;
        ok($sN->{master_rss} <= $mbound, "master's RSS "
            . "($sN->{master_rss} kB) within the same bound of reload 10's "
            . "($s10->{master_rss} kB)");
        # the zone's pages: no more than the zone (8 MiB) in each worker
        ok($sN->{shmem} <= $WORKERS * (8192 + 1024), "workers' shared "
            . "pages ($sN->{shmem} kB) within the zone's size each");
    }
    is($sN->{other}, $s10->{other}, "workers' descriptors other than "
        . 'sockets: the same after reload 10 and ' . $RELOADS);
    is($sN->{sock}, $s10->{sock}, "workers' sockets (listeners, panels, "
        . 'SDKs) the same');
    is($sN->{master_fds}, $s10->{master_fds}, "master's descriptors "
        . 'the same');
}

no_error_log(qr/\[(?:alert|crit|emerg)\]/, 'no alert, crit or emerg');
no_error_log(qr/open socket .* left/, 'no "open socket left"');
no_error_log(qr/exited on signal/, 'no worker crashed');

# stop nginx before the SDKs, as the final check does
$_->{p} && $_->{p}->is_open && $_->{p}->close(1000) for @SLOTS;
$t->stop;
stop_example();
$sa->stop;
$sb->stop;

done_testing();
