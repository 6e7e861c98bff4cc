# Runs the SDK's and the CLI's own tests (sdk/tests/test_*.py,
# tools/tests/test_*.py: the C API with cmocka, the SDK against Python's
# websockets as an independent agent, the CLI against a fake agent), one
# subtest per file, so that `make test` ends with a single prove summary.
# `make sdk-test` runs the same files directly.

use strict;
use warnings;

use FindBin;
use TAP::Parser;
use Test::More;

my $root = "$FindBin::Bin/..";
my $python = $ENV{SDK_PYTHON} // '/usr/bin/python3';
my @files = sort(glob("$root/sdk/tests/test_*.py"),
    glob("$root/tools/tests/test_*.py"));

ok(-x $python, "$python exists");
ok(scalar @files, 'there are SDK and CLI test files');
ok(-x "$root/build/amonitor", 'the CLI is built (make tools)');

local $ENV{AMON_BUILD} = $ENV{AMON_BUILD} // "$root/build";

for my $file (@files) {
    (my $name = $file) =~ s{^\Q$root\E/}{};

    subtest $name => sub {
        my $parser = TAP::Parser->new({ exec => [ $python, $file ] });
        my $n = 0;

        while (my $r = $parser->next) {
            if ($r->is_test) {
                $n++;
                ok($r->is_ok, $r->description);

            } elsif ($r->is_comment) {
                note($r->as_string);
            }
        }

        ok($n > 0, "$name ran tests");
        is($parser->exit, 0, "$name exited 0");
        ok(!$parser->parse_errors, "$name: valid TAP, plan kept")
            or diag(join "\n", $parser->parse_errors);
    };
}

done_testing();
