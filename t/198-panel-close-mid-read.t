# The agent closes a panel from inside a read pass: the panel sends
# faster than it reads the agent's answers (errors for a type the agent
# does not know), so one of them cannot be queued and the panel is closed
# with 1008 while the same read still holds more of its frames.  The rest
# of that read goes through the WebSocket parser (and is dropped), so the
# parser keeps its place: what the panel sends while the agent waits for
# its close frame is read as frames, not from the middle of one.  The
# panel then gets its answers whole, the 1008 and the end of the stream,
# and the log has no frame error the panel did not make.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Raw qw(raw_ws_connect raw_send raw_read_frame ws_frame);

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'cm-a',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target cm-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_ping 0;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1, 5), 'the SDK is connected');

$t->ignore_log(qr/\[warn\] .*panel #\d+ does not read its messages and an answer cannot be queued, closing it/);

for my $then (['nothing', ''],
    ['pings', ws_frame(opcode => 'ping', payload => 'hello') x 20])
{
    subtest "closed with 1008 in the middle of a read; then the panel "
        . "sends $then->[0]" => sub {
        # no heartbeats (?targets= names none): the answers are all it gets
        my ($s, $r) = raw_ws_connect($t->port(0), '/ws/panel?targets=',
            -rcvbuf => 4096);
        ok($s, 'a panel that does not read yet') or return diag($r);

        my $frame = ws_frame(opcode => 'text',
            payload => '{"msg_id":"' . ('i' x 200) . '","type":"nosuchtype"}');
        my $sent = raw_send($s, $frame x 40000, tscale(6));
        cmp_ok($sent, '>', 2_000_000, "the agent read $sent bytes of it");
        sleep_loop(0.3);
        raw_send($s, $then->[1], 2) if length $then->[1];
        sleep_loop(0.3);

        my ($errors, $close, $end, $other) = (0, undef, 'timeout', 0);
        while (my $f = raw_read_frame($s, tscale(5))) {
            if ($f->{eof}) {
                $end = 'eof';
                last;
            }
            if ($f->{opcode} == 8) {
                $close = $f;
                next;
            }
            if ($f->{opcode} == 1
                && $f->{payload} =~ /"code":"INVALID_MESSAGE"/)
            {
                $errors++;
            }
            else {
                $other++;
            }
        }
        cmp_ok($errors, '>', 0, "$errors answers arrived whole");
        is($other, 0, 'nothing else, nothing cut');
        is($close && $close->{close_code}, 1008, 'then the close frame: 1008');
        is($close && $close->{close_reason}, 'send queue overflow',
            'with its reason');
        is($end, 'eof', 'then the end of the stream');
        no_error_log(qr/websocket error/,
            'no frame error: the parser kept its place');
        close $s;
    };
}

done_testing();
