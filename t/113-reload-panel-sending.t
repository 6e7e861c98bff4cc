# A reload while a panel is behind and keeps sending.  The old worker
# hands the last frames and its 1012 to the socket, but the panel reads
# slowly, so they are still in the kernel's send buffer when the worker
# is done with the connection.  Closing the socket then, with the
# panel's bytes still arriving, makes the kernel answer them with a
# reset that throws away what was not yet sent: the panel would see the
# connection end without a close frame (1006).  The worker half-closes
# instead (RFC 6455 7.1.1: the TCP connection ends after the close
# frame is out), reads and discards until the panel closes, at most 3 s,
# so the panel gets its 1012.  A panel that then never closes does not
# hold the exit longer than that.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Raw qw(raw_read_frame slow_panel ws_frame);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Time::HiRes qw(time);

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'rs-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target rs-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 4096;
    amonitor_connection_buffer_limit 64m;
    amonitor_ping 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1, 5), 'the SDK is connected');

my ($sender, $r1) = slow_panel($t->port(0), '/ws/panel');
ok($sender, 'a panel that reads slowly and sends') or diag($r1);
my ($mute, $r2) = slow_panel($t->port(0), '/ws/panel');
ok($mute, 'a panel that reads slowly and never closes') or diag($r2);
sleep_loop(0.3);

# more than the sockets hold: the worker has frames queued for both
my $pad = 'x' x 2048;
$sdk->emit_event('fill', $pad) for 1 .. 1500;
sleep_loop(1);

my @old = $t->worker_pids;
my $t0 = time;
ok($t->reload, 'reload');

# read a few KiB at a time and send a small message after each read,
# until the close frame or the end of the connection
sub read_slowly {
    my ($s, $send, $limit) = @_;
    my $msg = ws_frame(opcode => 'text', payload => '{"type":"noop"}');
    my ($n, $deadline) = (0, time + $limit);

    while (time < $deadline) {
        if ($send) {
            local $SIG{PIPE} = 'IGNORE';
            my $w = syswrite($s, $msg);
            # a reset: like asyncio's transports (Python's websockets),
            # the client drops the connection with what it has not read
            return ('write failed', $n, "$!")
                unless defined $w || $! == EAGAIN || $! == EWOULDBLOCK
                || $! == EINTR;
        }
        my $f = raw_read_frame($s, 0.002) or next;
        return ('eof', $n) if $f->{eof};
        $n++;
        return ('close', $n, $f->{close_code}) if $f->{opcode} == 8;
    }
    return ('timeout', $n);
}

my ($how, $n, $code) = read_slowly($sender, 1, tscale(10));
is($how, 'close', "the sending panel gets a close frame (after $n frames)")
    or diag("it got: $how" . (defined $code ? " ($code)" : ''));
is($code, 1012, 'with 1012');
close $sender;

# the mute one reads all of it, then keeps its socket open
($how, $n, $code) = read_slowly($mute, 0, tscale(10));
is($how, 'close', "the mute panel gets its close frame (after $n frames)");
is($code, 1012, 'with 1012');

ok(wait_for(sub { !grep { kill 0, $_ } @old }, 8),
    'the old worker exits');
my $took = time - $t0;
cmp_ok($took, '<', tscale(3) + 4,
    sprintf('a panel that does not close holds the exit at most about 3 s '
        . 'more (%.2f s)', $took));

done_testing();
