# t/112 over nginx's "listen ... ssl": a reload while a TLS panel is
# behind.  Its socket is full, so the last record the worker wrote to it
# is only partly on the wire: OpenSSL keeps it and must be given the same
# bytes again.  The old worker drops the frames that have not started to
# go out and queues its 1012; before, that dropped the frames of the
# unfinished record too, the next SSL_write() got other bytes ("bad
# length", a [crit] line) and the panel saw the connection end in the
# middle of a record, without a close frame.  Now the frames of the
# unfinished record stay, and the panel that reads again gets them, then
# its 1012.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Raw qw(raw_ws_connect raw_read_frame slow_panel);
use Time::HiRes qw(time);

my $t = Test::AMonitor->new(workers => 1);
my $dir = $t->prefix . '/pki';
my $out = `bash '$FindBin::Bin/../scripts/tls-certs.sh' '$dir' 2>&1`;
die "tls-certs.sh: $out" if $?;

# the SDK over wss:// too: the agent's close frame to it at the reload
# goes through the same TLS writes
my $sdk = fake_sdk(port => $t->port(1), target_id => 'rb-tls',
    heartbeat_interval => 0,
    tls => { cert => "$dir/sdk.crt", key => "$dir/sdk.key" });

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_ssl_trusted_certificate $dir/ca.crt;
    amonitor_target rb-tls wss://127.0.0.1:%%PORT_1%%/;
    amonitor_send_queue 4096;
    amonitor_connection_buffer_limit 64m;
    amonitor_ping 0;
    server {
        listen 127.0.0.1:%%PORT_2%% ssl;
        ssl_certificate $dir/panel.crt;
        ssl_certificate_key $dir/panel.key;
        location = /ws/panel { amonitor_panel on; }
    }
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1, 5), 'the SDK is connected');

my ($behind, $r1) = slow_panel($t->port(2), '/ws/panel', -tls => 1);
ok($behind, 'a TLS panel that will read late') or diag($r1);
my ($fast, $r2) = raw_ws_connect($t->port(2), '/ws/panel', -tls => 1);
ok($fast, 'a TLS panel that reads') or diag($r2);
sleep_loop(0.3);

# 3,000 events of 2 KiB: more than the sockets hold, so the worker has
# frames queued for the slow panel and a record half-written to it
my $pad = 'x' x 2048;
$sdk->emit_event('fill', $pad) for 1 .. 3000;
sleep_loop(1);

my @old = $t->worker_pids;
ok($t->reload, 'reload');

# read a panel's frames until its close frame: (close code, events read,
# whether the connection ended first)
sub read_to_close {
    my ($s) = @_;
    my ($code, $n, $eof) = (undef, 0, 0);
    while (my $f = raw_read_frame($s, tscale(5))) {
        if ($f->{eof}) {
            $eof = 1;
            last;
        }
        if ($f->{opcode} == 8) {
            $code = $f->{close_code};
            last;
        }
        $n++;
    }
    return ($code, $n, $eof);
}

my ($code, $n) = read_to_close($fast);
is($code, 1012, "the TLS panel that reads gets 1012 (after $n frames)");

sleep_loop(0.5);
my $eof;
($code, $n, $eof) = read_to_close($behind);
is($code, 1012, "the TLS panel that was behind gets 1012 too, after $n "
    . 'frames (not the end of the connection in the middle of a record)')
    or diag($eof ? 'the connection ended without a close frame' : 'no end');
cmp_ok($n, '>', 100, 'it got the events queued for it before its 1012');

ok(wait_for(sub { !grep { kill 0, $_ } @old }, tscale(5)),
    'the old worker exits');
ok(wait_for(sub { $sdk->accepted >= 2 && $sdk->connections == 1 },
    tscale(5)), 'the new worker has dialed the SDK over TLS, the old '
    . 'connection is closed');
no_error_log(qr/SSL_write\(\) failed/,
    'no SSL_write() failed (a retry with other bytes than OpenSSL kept)');

done_testing();
