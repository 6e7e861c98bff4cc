# A target at an IPv6 address: "amonitor_target v6 ws://[::1]:PORT/" is
# accepted (nginx -t said "invalid port" before: the address went to
# nginx's URL parser without its brackets), dialed, and works as any
# other; the status names its URL as configured.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), host => '::1', target_id => 'v6',
    heartbeat_interval => 0.2);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target v6 ws://[::1]:%%PORT_1%%/;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }
               location = /amonitor/status { amonitor_status; }',
);
my ($status, $out) = $t->nginx_t;
is($status, 0, 'nginx -t accepts a target at [::1]') or diag($out);
$t->run;

ok($sdk->wait_connections(1), 'the worker dials the SDK over IPv6');

my $p = $t->panel('/ws/panel');
my $hb = $p->recv_type('heartbeat', timeout => 5);
is($hb && $hb->{json}{target_id}, 'v6', 'its heartbeats reach the panel');

my $id = uuid4();
$p->send_action($id, 'v6');
my $a = $p->answer_to($id, 5);
ok($a && $a->{type} eq 'action_ack' && $a->{payload}{success},
    'an action to it is acked');

my $st = $t->http_get('/amonitor/status');
like($st->{body} // '', qr{"url":"ws://\[::1\]:\d+/"},
    'the status names the configured URL');

$t->stop;
$sdk->stop;
done_testing;
