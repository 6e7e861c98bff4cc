# t/114 over nginx's "listen ... ssl": a panel written with Python's
# websockets library, behind on reading (it waits half a millisecond after
# each message) and sending all the time, on a wss:// connection.  TLS has
# no half-close: once asyncio's TLS transport meets the end of the stream
# (close_notify or FIN) it ends the connection, and the panel's next write
# then fails and websockets drops what it had not read yet, the 1012
# among it: before, the panel saw 1006 after about 60 of the 600 events.
# The worker now keeps the socket open until the panel's close frame
# arrives: the panel reads every event in flight and then its 1012.
# Three rounds, each must end so.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Interop qw(python_websockets reload_rounds);
use Test::AMonitor::Raw qw(raw_ws_connect raw_read_frame);
use Time::HiRes qw(time);

my $PY = '/usr/bin/python3';
my $EVENTS = 600;
python_websockets($PY);

my $t = Test::AMonitor->new(workers => 1);
my $dir = $t->prefix . '/pki';

sub sh {
    my ($cmd) = @_;
    my $out = `$cmd 2>&1`;
    die "$cmd: $out" if $?;
}

mkdir $dir or die "$dir: $!";
sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=ca'"
    . " -keyout '$dir/ca.key' -out '$dir/ca.crt'");
open(my $fh, '>', "$dir/panel.ext") or die "panel.ext: $!";
print $fh "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
close $fh;
sh("openssl req -newkey rsa:2048 -nodes -subj '/CN=panel'"
    . " -keyout '$dir/panel.key' -out '$dir/panel.csr'");
sh("openssl x509 -req -days 2 -in '$dir/panel.csr' -CA '$dir/ca.crt'"
    . " -CAkey '$dir/ca.key' -CAcreateserial -out '$dir/panel.crt'"
    . " -extfile '$dir/panel.ext'");

$t->write_config(
    http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_reconnect 50ms 300ms;
    amonitor_target py-reload ws://127.0.0.1:%%PORT_1%%/;
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

reload_rounds($t, $PY, 'wss://127.0.0.1:' . $t->port(2) . '/ws/panel',
    sdk_port => $t->port(1), events => $EVENTS, args => ['--cafile',
    "$dir/ca.crt", '--events', $EVENTS, '--fill', 0.6, '--read-delay',
    0.0005]);

# a TLS panel that never answers the close frame: the worker waits for
# it at most the 3 s, then closes (and exits)
my $mute = raw_ws_connect($t->port(2), '/ws/panel', -tls => 1);
ok($mute, 'a raw panel over TLS that will not answer the close frame');
my @old = $t->worker_pids;
my $t0 = time;
ok($t->reload, 'reload');
my $f;
do { $f = raw_read_frame($mute, tscale(5)) }
    while $f && !$f->{eof} && $f->{opcode} != 8;
is($f && $f->{opcode}, 8, 'it gets the close frame');
ok(wait_for(sub { !grep { kill 0, $_ } @old }, tscale(8)),
    'the old worker exits');
my $took = time - $t0;
cmp_ok($took, '>=', 2.5, sprintf('after waiting for the answer (%.2f s)',
    $took));
cmp_ok($took, '<', tscale(3) + 4, 'at most about 3 s');

done_testing();
