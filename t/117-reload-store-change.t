# A reload may not change where the dedupe table lives: renaming
# amonitor_zone, or adding or removing amonitor_redis, is refused with an
# emerg line and the running configuration goes on, so a msg_id acked
# before such a reload is still a duplicate after it (the reload used to
# start from an empty table: the action ran again).  Other reloads, and
# the same zone under its own name, still pass.  A reload without any
# amonitor line keeps the zone, so that the configuration can come back
# with its table and counters.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Redis;

my $redis = Test::AMonitor::Redis->new;
ok($redis->start, 'redis-server started');

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 'rs',
    heartbeat_interval => 0);

sub conf {
    my ($zone, $extra) = @_;
    $t->write_config(
        http_config => "    amonitor_zone $zone 1m;\n"
            . "    amonitor_target rs ws://127.0.0.1:%%PORT_1%%/;\n"
            . ($extra // ''),
        config => 'location = /ws/panel { amonitor_panel on; }
                   location = /metrics { amonitor_metrics; }',
    );
}

conf('amon');
$t->run;
ok($sdk->wait_connections(1), 'the worker dialed the SDK');

my $p = $t->panel('/ws/panel?targets=');
sub act {
    my ($id) = @_;
    $p->send_json({ msg_id => $id, type => 'action', target_id => 'rs',
        payload => { action => 'restart' } });
    return $p->answer_to($id, 10);
}

my $a = act('keep-1');
ok($a && !$a->{payload}{duplicate}, 'keep-1 runs');

my @refused = (
    ['a renamed zone', 'amon2', '',
        qr/amonitor zone "amon" cannot be renamed to "amon2" on reload: the dedupe state would be lost/],
    ['amonitor_redis added', 'amon',
        '    amonitor_redis ' . $redis->addr . ";\n",
        qr/"amonitor_redis" cannot be added on reload: the dedupe state would be lost/],
);
for my $r (@refused) {
    my ($what, $zone, $extra, $re) = @$r;
    $t->mark_log;
    conf($zone, $extra);
    ok(!$t->reload, "$what: the reload is refused");
    ok($t->log_count($re) >= 1, "$what: the emerg line says why");
    $p = $t->panel('/ws/panel?targets=') unless $p->is_open;
    my $d = act('keep-1');
    ok($d && $d->{payload}{duplicate}, "$what: keep-1 is still a duplicate");
}
is(scalar(grep { ($_->{msg_id} // '') eq 'keep-1' } $sdk->actions), 1,
    'keep-1 ran once');

# the same zone under its name: a reload that changes something else
conf('amon', "    amonitor_ack_timeout 7s;\n");
ok($t->reload, 'a reload that keeps the zone and the store passes');
$p = $t->panel('/ws/panel?targets=');
my $d = act('keep-1');
ok($d && $d->{payload}{duplicate}, 'keep-1 is a duplicate after it');

# every amonitor line out, then back: the zone is kept meanwhile (nginx
# freed it, and the table and the counters started again from nothing)
my $before = $t->metric('amonitor_duplicates_total');
$t->mark_log;
$t->write_config(config => 'location = /x { return 204; }');
ok($t->reload, 'a reload without any amonitor line passes');
ok($t->log_count(qr/\[notice\].*amonitor zone "amon" is kept although no "amonitor_zone" is configured/) >= 1,
    'the notice says the zone is kept');
conf('amon', "    amonitor_ack_timeout 7s;\n");
ok($t->reload, 'the configuration back: the reload passes');
$p = $t->panel('/ws/panel?targets=');
$d = act('keep-1');
ok($d && $d->{payload}{duplicate},
    'keep-1 is still a duplicate after the configuration was out');
cmp_ok($before, '>', 0, 'duplicates were counted before');
cmp_ok($t->metric('amonitor_duplicates_total'), '>', $before,
    'the counters went on');
is(scalar(grep { ($_->{msg_id} // '') eq 'keep-1' } $sdk->actions), 1,
    'keep-1 ran once');

$t->ignore_log(qr/\[emerg\].*cannot be (?:renamed|added)/);
$t->stop;

# started with Redis: removing it is refused as well
my $u = Test::AMonitor->new(workers => 1);
$u->write_config(
    http_config => "    amonitor_zone amon 1m;\n"
        . '    amonitor_redis ' . $redis->addr . ";\n",
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;
$u->mark_log;
$u->write_config(http_config => "    amonitor_zone amon 1m;\n",
    config => 'location = /ws/panel { amonitor_panel on; }');
ok(!$u->reload, 'amonitor_redis removed: the reload is refused');
ok($u->log_count(qr/"amonitor_redis" cannot be removed on reload/) >= 1,
    'the emerg line says why');
# every amonitor line out, then back with Redis: passes, as it was
$u->write_config(config => 'location = /x { return 204; }');
ok($u->reload, 'with Redis: a reload without any amonitor line passes');
$u->write_config(
    http_config => "    amonitor_zone amon 1m;\n"
        . '    amonitor_redis ' . $redis->addr . ";\n",
    config => 'location = /ws/panel { amonitor_panel on; }');
ok($u->reload, 'with Redis: the configuration back passes');
$u->ignore_log(qr/\[emerg\].*cannot be removed/);
$u->stop;

$sdk->stop;
$redis->stop;

done_testing;
