# The age of a target's last heartbeat (amonitor_target_last_heartbeat_age_
# seconds) counts from the last heartbeat that reached the agent, whatever
# its size or msg_id: heartbeats over 4 KiB (not kept for the snapshot)
# and heartbeats that repeat one msg_id (which the workers take for
# copies of one heartbeat) update it too; a heartbeat over 4 KiB makes
# the snapshot forget the older one.  Two workers, so that each
# heartbeat reaches the zone twice.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my %sdk = map {
    my ($id, $n) = @$_;
    ($id => fake_sdk(port => $t->port($n), target_id => $id,
        heartbeat_interval => 0))
} (['hb-big', 1], ['hb-bigonly', 2], ['hb-small', 3], ['hb-const', 4]);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target hb-big ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target hb-bigonly ws://127.0.0.1:%%PORT_2%%/;
    amonitor_target hb-small ws://127.0.0.1:%%PORT_3%%/;
    amonitor_target hb-const ws://127.0.0.1:%%PORT_4%%/;
EOC
    config => <<'EOC',
location = /ws/panel { amonitor_panel on; }
location = /metrics { amonitor_metrics; }
EOC
)->run;

ok($sdk{$_}->wait_connections(2), "both workers dialed $_") for sort keys %sdk;

my ($seq, $last_small) = (0, 0);
sub beat {
    my ($id, $size, $msg_id) = @_;
    $seq++;
    $sdk{$id}->send_all({ msg_id => $msg_id // "hb-$id-$seq",
        type => 'heartbeat', target_id => $id, timestamp => int(time * 1000),
        payload => { metrics => { seq => "$seq", pad => 'x' x $size } } });
}

sub ages {
    my $body = $t->http_get('/metrics')->{body} // '';
    my %age = $body
        =~ /^amonitor_target_last_heartbeat_age_seconds\{target="([^"]+)"\} (\S+)$/mg;
    return \%age;
}

# 3 s of heartbeats, one every 0.25 s: hb-big's first one small, the rest
# over 4 KiB; hb-bigonly's all over 4 KiB; hb-const's all with msg_id "hb"
for my $round (1 .. 12) {
    beat('hb-big', $round == 1 ? 10 : 5000);
    beat('hb-bigonly', 5000);
    beat('hb-small', 10);
    my $small = $seq;
    beat('hb-const', 10, 'hb');
    sleep_loop(0.25);
    $last_small = $small;
}

my $age = ages();
for my $id (sort keys %sdk) {
    ok(defined $age->{$id}, "$id has an age series");
    cmp_ok($age->{$id} // 99, '<', 1.5,
        "$id: its last heartbeat is recent (" . ($age->{$id} // 'none') . ' s)');
}

# a new panel's snapshot: no stale heartbeat of hb-big (its last is too
# big to keep and the older one is forgotten), hb-small's latest
my $p = $t->panel('/ws/panel?targets=hb-small,hb-big');
my $hb = $p->recv_type('heartbeat', target_id => 'hb-small', timeout => 5);
my $s = $hb ? $hb->{json}{payload}{metrics}{seq} : -1;
is($s, $last_small, "the snapshot holds hb-small's latest heartbeat ($s)");
$p->recv_type('target_status', target_id => 'hb-big', timeout => 5);
ok(!grep({ ($_->{json}{type} // '') eq 'heartbeat'
        && ($_->{json}{target_id} // '') eq 'hb-big' } $p->messages),
    'and no stale heartbeat of hb-big');

$t->stop;
$_->stop for values %sdk;

done_testing;
