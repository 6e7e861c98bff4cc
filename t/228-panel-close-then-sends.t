# The agent closes a panel (a protocol error, a reload) while the panel
# is still sending and has not read yet.  The agent's close frame is out
# of the agent's socket at once: it sits in the panel's receive buffer,
# unread.  Closing the socket then (nothing seemed in flight either way)
# made the kernel answer the panel's next frame with a reset, and a
# client that drops what it has not read when a write fails (Python's
# asyncio, t/114) saw the end of the connection without a close frame
# (1006) and lost the frames before it.  The agent now ends its side
# with a FIN after the close frame and reads (and drops) what the panel
# still sends, until the panel's close frame (not looked for after a
# protocol error: those bytes are not parsed), its end of the stream, or
# the close timeout: the panel's writes keep succeeding, and it reads
# the close frame and then the end of the stream.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Socket qw(SOL_SOCKET SO_ERROR);
use Test::AMonitor;
use Test::AMonitor::Raw qw(raw_ws_connect raw_send raw_read_frame ws_frame);

my $t = Test::AMonitor->new(workers => 1);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_ping 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; '
        . 'amonitor_panel_snapshot off; }',
)->run;

my $noop = ws_frame(opcode => 'text', payload => '{"type":"noop"}');

# the panel sends twice, 200 ms apart, without reading: both writes must
# go through and the socket keep no error; then it reads its frames
sub sends_then_reads {
    my ($s, $what) = @_;
    my @sent = map { sleep_loop(0.2); raw_send($s, $noop, 1) } 1 .. 2;
    my $err = unpack('i', getsockopt($s, SOL_SOCKET, SO_ERROR) // '');
    is(join(' ', @sent, "error $err"), join(' ', (length $noop) x 2,
        'error 0'), "$what: the panel's two frames after the close were "
        . 'written, its socket not reset');

    my ($close, $end) = (undef, 'timeout');
    while (my $f = raw_read_frame($s, tscale(5))) {
        if ($f->{eof}) {
            $end = 'eof';
            last;
        }
        $close //= $f->{close_code} if $f->{opcode} == 8;
    }
    return ($close, $end);
}

# a protocol error: an unmasked frame from a client (RFC 6455 5.1)
my ($s, $r) = raw_ws_connect($t->port(0), '/ws/panel?targets=');
ok($s, 'a panel is open') or diag($r);
raw_send($s, ws_frame(opcode => 'text', payload => '{}', mask => 0));
# the agent's 1002 arrives in the panel's socket meanwhile, unread
sleep_loop(0.5);
my ($close, $end) = sends_then_reads($s, 'protocol error');
is($close, 1002, 'protocol error: the panel reads the 1002');
is($end, 'eof', 'protocol error: and then the end of the stream');
raw_send($s, ws_frame(opcode => 'close', close_code => 1002), 1);
close $s;

# a reload: the old worker's 1012, the panel idle until then
($s, $r) = raw_ws_connect($t->port(0), '/ws/panel?targets=');
ok($s, 'another panel is open') or diag($r);
my @old = $t->worker_pids;
$t->reload;
sleep_loop(0.5);
($close, $end) = sends_then_reads($s, 'reload');
is($close, 1012, 'reload: the panel reads the 1012');
is($end, 'eof', 'reload: and then the end of the stream');
raw_send($s, ws_frame(opcode => 'close', close_code => 1012), 1);
close $s;
ok(wait_for(sub { !grep { kill 0, $_ } @old }, tscale(5)),
    'reload: the old worker exits once the panel closed');

$t->ignore_log(qr/\[info\].*(?:client sent|unmasked|masked)/);
$t->stop;

done_testing;
