# New panels' snapshots share what they tell about each target: the
# target_status of a record is built once and used again by the panels
# that open after it, while the record does not change and for at most a
# second.  A panel must still be told the state as it is when it opens:
# a target that came up, went down or was learned since the last panel
# opened is told as it is now, and after a second without change the
# target_status is built again (a fresh msg_id and timestamp).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Time::HiRes qw(time sleep);

my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1,
    log_level => 'info');
my $x = fake_sdk(port => $t->port(1), target_id => 'sx',
    heartbeat_interval => 0, no_start => 1);
my $y = fake_sdk(port => $t->port(2), target_id => 'sy',
    heartbeat_interval => 0);
my $l = fake_sdk(port => $t->port(3), target_id => 'sl',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target sx ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target sy ws://127.0.0.1:%%PORT_2%%/;
    amonitor_allow_url ws://127.0.0.1:*;
    amonitor_reconnect 100ms 200ms;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($y->wait_connections(1), 'sy is connected');

# the target_status of "id" in a new panel's snapshot
sub told {
    my ($p, $id) = @_;
    my $m = $p->recv_type('target_status', target_id => $id, timeout => 5);
    return $m && $m->{json};
}

sub state_of { my $j = told(@_); return $j ? $j->{payload}{state} : 'none' }

my $a = $t->panel('/ws/panel', name => 'a');
is(state_of($a, 'sx'), 'down', 'first panel: sx down');

$x->start;
ok($a->recv_type('target_status', target_id => 'sx', state => 'up',
    timeout => 5), 'the first panel is told sx came up');
my $b = $t->panel('/ws/panel', name => 'b');
is(state_of($b, 'sx'), 'up', 'a panel opened right after: sx up');

$x->heartbeat;
# every heartbeat sx sent (one may come with its connection) reached "a"
my @beats;
ok(wait_for(sub {
    @beats = grep {
        my $j = $_->{json};
        ref $j eq 'HASH' && ($j->{type} // '') eq 'heartbeat'
            && ($j->{target_id} // '') eq 'sx'
    } $a->messages;
    @beats && @beats == $x->heartbeats
}, 5), 'the first panel gets the heartbeats');
my $hb = @beats ? $beats[-1]{json}{msg_id} : 'none';
my $c = $t->panel('/ws/panel', name => 'c');
is(state_of($c, 'sx'), 'up', 'the next panel: sx up');
my $h = $c->recv_type('heartbeat', target_id => 'sx', timeout => 5);
is($h && $h->{json}{msg_id}, $hb, 'and its latest heartbeat');

$x->stop;
ok($a->recv_type('target_status', target_id => 'sx', state => 'down',
    timeout => 5), 'the first panel is told sx went down');
my $d = $t->panel('/ws/panel', name => 'd');
my $j = told($d, 'sx');
is($j && $j->{payload}{state}, 'down', 'a panel opened right after: down');
ok($j && $j->{payload}{reason}, 'with its reason');

# a target learned now is in the next snapshot
my $q = $t->panel('/ws/panel?targets=', name => 'dialer');
my $id = uuid4();
$q->send_json({ msg_id => $id, type => 'action', timestamp => now_ms(),
    target_id => 'sl',
    payload => { action => 'restart', target_url => $l->url } });
my $ack = $q->answer_to($id, 10);
is($ack && $ack->{type}, 'action_ack', 'sl is dialed on demand and acks');
my $e = $t->panel('/ws/panel', name => 'e');
is(state_of($e, 'sl'), 'up', 'a panel opened right after is told sl');

# two panels at once are told the same; a second later it is built again
my $f1 = $t->panel('/ws/panel', name => 'f1');
my $f2 = $t->panel('/ws/panel', name => 'f2');
my ($s1, $s2) = (told($f1, 'sy'), told($f2, 'sy'));
is($s1 && $s1->{payload}{state}, 'up', 'sy up');
is($s2 && $s2->{payload}{state}, 'up', 'sy up for the other panel too');
sleep 1.5;
my $t0 = now_ms();
my $g = $t->panel('/ws/panel', name => 'g');
my $s3 = told($g, 'sy');
cmp_ok($s3 && $s3->{timestamp}, '>=', $t0 - 200,
    'a panel 1.5 s later gets a target_status built when it opened');
isnt($s3 && $s3->{msg_id}, $s1 && $s1->{msg_id}, 'with a new msg_id');

$t->ignore_log(qr/\[error\].*(?:connect\(\) failed|cannot connect)/);
$t->stop;
$_->stop for $y, $l;
done_testing;
