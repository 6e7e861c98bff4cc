package Test::AMonitor::Util;

# Shared helpers of the AMonitor test harness: the event loop pump that
# every blocking helper uses, lock-held free ports, UUIDs, JSON, verbose
# output.  See Test::AMonitor for the documentation of the exported names.

use strict;
use warnings;

BEGIN {
    # big messages are part of the tests; Mojo's default limit is 256 KiB
    $ENV{MOJO_MAX_WEBSOCKET_SIZE} ||= 64 * 1024 * 1024;
}

use Exporter 'import';
use Fcntl qw(:flock O_RDONLY);
use File::Path qw(make_path);
use File::Temp ();
use IO::Socket::INET;
use List::Util qw(min);
use Mojo::IOLoop;
use Mojo::JSON qw(encode_json decode_json);
use Socket qw(SOL_SOCKET SO_REUSEADDR);
use Time::HiRes qw(time);

our @EXPORT_OK = qw(wait_for sleep_loop free_port uuid4 encode_json
    decode_json try_decode_json now_ms verbose note_verbose tscale
    default_timeout json_text mute_listener prometheus_samples
    dead_targets dedupe_tally);

our $PORT_LOCK_DIR = $ENV{TEST_AMON_PORT_LOCK_DIR} || '/tmp/amon-test-ports';

# lower bound and size of the range ports are taken from; below the
# kernel's ephemeral range so outgoing connections cannot take them
our $PORT_BASE  = 20000;
our $PORT_RANGE = 12000;

my %port_locks;    # port => locked file handle, held until exit


# Slow builds (valgrind, sanitizers) stretch every default timeout.
sub tscale {
    my ($seconds) = @_;
    my $k = $ENV{TEST_AMON_TIMEOUT_SCALE}
        || ($ENV{TEST_NGINX_VALGRIND} ? 8 : $ENV{TEST_AMON_SANITIZER} ? 2 : 1);
    return $seconds * $k;
}

sub default_timeout { tscale(5) }

sub verbose { $ENV{TEST_AMON_VERBOSE} ? 1 : 0 }

sub note_verbose {
    return unless verbose();
    my $msg = join '', @_;
    $msg =~ s/\n*\z/\n/;
    print STDERR "# amon: $msg";
}


# Spin the Mojo event loop until $cond returns true (the true value is
# returned) or $timeout seconds pass (undef is returned).  Every blocking
# helper waits through here, so fake SDKs and panels of the test process
# keep working while the test waits for anything.
sub wait_for {
    my ($cond, $timeout) = @_;
    my ($deadline, $loop, $r, $left, $id);

    $timeout  = default_timeout() unless defined $timeout;
    $deadline = time + $timeout;
    $loop     = Mojo::IOLoop->singleton;

    for (;;) {
        $r = $cond->();
        return $r if $r;
        $left = $deadline - time;
        return undef if $left <= 0;
        # the timer bounds the tick, so that conditions on things the loop
        # does not watch (raw sockets, files, processes) are polled too
        $id = $loop->timer(min($left, 0.01) => sub { });
        $loop->one_tick;
        $loop->remove($id);
    }
}

sub sleep_loop {
    my ($seconds) = @_;
    wait_for(sub { 0 }, $seconds);
    return 1;
}


sub _port_is_free {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => $port,
        Proto     => 'tcp',
        Listen    => 1,
        ReuseAddr => 1,
    );
    return 0 unless $s;
    close $s;
    return 1;
}

# lock $port for the life of this process if it is free; true on success
sub _lock_port {
    my ($port) = @_;
    my $fh;

    return 0 if $port_locks{$port};
    open($fh, '>>', "$PORT_LOCK_DIR/$port.lock") or return 0;
    if (!flock($fh, LOCK_EX | LOCK_NB)) {
        close $fh;
        return 0;
    }
    if (!_port_is_free($port)) {
        close $fh;
        return 0;
    }
    $port_locks{$port} = $fh;
    return 1;
}

# A free TCP port on 127.0.0.1, locked with flock() on
# $PORT_LOCK_DIR/<port>.lock for the life of this process, so that test
# files run in parallel (prove -j) never pick the same port.  With $n,
# the first of $n consecutive free ports (all locked).
sub free_port {
    my ($n) = @_;
    my ($start, $i, $port, $k);

    $n //= 1;
    make_path($PORT_LOCK_DIR, { mode => 01777 }) unless -d $PORT_LOCK_DIR;
    $start = int(rand($PORT_RANGE));

    for $i (0 .. $PORT_RANGE - 1) {
        $port = $PORT_BASE + ($start + $i) % $PORT_RANGE;
        next if $port + $n - 1 >= $PORT_BASE + $PORT_RANGE;
        for $k (0 .. $n - 1) {
            next if _lock_port($port + $k);
            # release what this attempt locked
            close(delete $port_locks{ $port + $_ }) for 0 .. $k - 1;
            $port = undef;
            last;
        }
        return $port if defined $port;
    }

    die "no free port in $PORT_BASE.." . ($PORT_BASE + $PORT_RANGE) . "\n";
}

# true when this process holds the lock of $port (used by the harness
# self-test)
sub port_locked_here { return $port_locks{ $_[0] } ? 1 : 0 }


sub _random_bytes {
    my ($n) = @_;
    my ($fh, $buf);

    if (sysopen($fh, '/dev/urandom', O_RDONLY)) {
        sysread($fh, $buf, $n);
        close $fh;
    }
    if (!defined $buf || length $buf != $n) {
        $buf = join '', map { chr(int(rand(256))) } 1 .. $n;
    }
    return $buf;
}

sub random_bytes { _random_bytes(@_) }

# RFC 4122 version 4 UUID string
sub uuid4 {
    my @b = unpack('C16', _random_bytes(16));
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return sprintf('%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-'
        . '%02x%02x%02x%02x%02x%02x', @b);
}

sub now_ms { return int(time * 1000) }

# a listening socket whose connections the kernel completes and nobody
# accepts: a WebSocket handshake sent there is never answered (keep the
# socket as long as the test needs it; ->sockport is its port)
sub mute_listener {
    return IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 64, Proto => 'tcp', ReuseAddr => 1)
        || die "listen: $!";
}

# the Prometheus text $text parsed by a real parser (Debian's
# python3-prometheus-client): an array of [name, {labels}, value] per
# sample, or undef when it does not parse
sub prometheus_samples {
    my ($text) = @_;
    my ($fh, $file) = File::Temp::tempfile(UNLINK => 1);
    print $fh $text;
    close $fh;
    my $out = `/usr/bin/python3 - "$file" <<'EOP'
import json, sys
from prometheus_client.parser import text_string_to_metric_families
res = []
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in f.samples:
        res.append([s.name, s.labels, s.value, f.name, f.type])
print(json.dumps(res))
EOP
`;
    return eval { decode_json($out) };
}

# $n amonitor_target lines ("$prefix00001" ...), each dialing a port
# nobody listens on (PORT_1), for the http_config of write_config
sub dead_targets {
    my ($prefix, $n) = @_;
    return join '', map {
        sprintf("    amonitor_target %s%05d ws://127.0.0.1:%%%%PORT_1%%%%/%d;\n",
            $prefix, $_, $_)
    } 1 .. $n;
}

# JSON as the original Python tools write it: Mojo::JSON escapes every
# "/" as "\/"; json.dumps does not.  (Mojo always escapes "/", so each
# "\/" in its output is exactly one escaped slash.)
sub json_text {
    my ($data) = @_;
    my $s = encode_json($data);
    $s =~ s{\\/}{/}g;
    return $s;
}

# decode_json that returns undef instead of dying
sub try_decode_json {
    my ($bytes) = @_;
    my $v = eval { decode_json($bytes) };
    return $v;
}


# The answers to one msg_id that several panels sent at once, checked:
# one real ack (a final success, not a duplicate) and, for every other
# panel, a final "duplicate ignored" that tells what is known of the first
# attempt: still pending (it raced the first), or done with the stored
# ack.  $answers->{$id}[$i] lists what panel $i got for $id.  Returns a
# hashref: not_once (ids the SDK did not run exactly once), bad_count
# (panels with other than one answer), bad_mix (answers of another kind,
# or not one real ack and the rest duplicates), winners (panel index =>
# real acks it got).
sub dedupe_tally {
    my ($sdk, $answers, $ids, $npanels) = @_;
    my %r = (not_once => [], bad_count => [], bad_mix => [], winners => {});

    for my $id (@$ids) {
        push @{ $r{not_once} }, "$id: " . $sdk->executed($id)
            if $sdk->executed($id) != 1;
        my ($real, $dup) = (0, 0);
        for my $i (0 .. $npanels - 1) {
            my $got = $answers->{$id}[$i] // [];
            if (@$got != 1) {
                push @{ $r{bad_count} },
                    "$id panel $i: " . scalar(@$got) . ' answers';
                next;
            }
            my $j = $got->[0];
            my $pl = ref $j->{payload} eq 'HASH' ? $j->{payload} : {};
            my $dup_pending = ($pl->{state} // '') eq 'pending'
                && ($pl->{message} // '')
                    eq 'duplicate ignored: the first attempt is still pending'
                && !$pl->{success} && !exists $pl->{original};
            my $dup_done = ($pl->{state} // '') eq 'done'
                && ($pl->{message} // '') eq 'duplicate ignored'
                && $pl->{success}
                && ref $pl->{original} eq 'HASH'
                && ($pl->{original}{action_msg_id} // '') eq $id
                && $pl->{original}{success};
            if (($j->{type} // '') eq 'action_ack' && $pl->{duplicate}
                && $pl->{final} && ($dup_pending || $dup_done))
            {
                $dup++;
            }
            elsif (($j->{type} // '') eq 'action_ack'
                && !exists $pl->{duplicate} && $pl->{success}
                && $pl->{final})
            {
                $real++;
                $r{winners}{$i}++;
            }
            else {
                push @{ $r{bad_mix} }, "$id panel $i: " . encode_json($j);
            }
        }
        push @{ $r{bad_mix} }, "$id: $real real acks, $dup duplicates"
            if $real != 1 || $dup != $npanels - 1;
    }

    return \%r;
}


1;
