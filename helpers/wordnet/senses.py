"""Explicit sense choices: the WordNet synset of each COCO category, and the caption words whose
first WordNet sense is the wrong one (or that are never tags), each checked against WordNet's
definition (quoted in short). Data only: `helpers.wordnet.synsets` applies them.
"""

from __future__ import annotations

# The 80 COCO object categories (instances_*.json "name") -> the WordNet synset each one means.
# Each was checked against the synset's WordNet definition (quoted in short).
COCO_CATEGORY_SYNSETS: dict[str, str] = {
    "person": "person.n.01",                    # a human being
    "bicycle": "bicycle.n.01",                  # two wheels, moved by foot pedals
    "car": "car.n.01",                          # motor vehicle with four wheels
    "motorcycle": "motorcycle.n.01",            # motor vehicle with two wheels
    "airplane": "airplane.n.01",                # aircraft with a fixed wing
    "bus": "bus.n.01",                          # vehicle carrying many passengers
    "train": "train.n.01",                      # line of railway cars coupled together
    "truck": "truck.n.01",                      # automotive vehicle suitable for hauling
    "boat": "boat.n.01",                        # a small vessel for travel on water
    "traffic light": "traffic_light.n.01",      # a visual signal to control the flow of traffic
    "fire hydrant": "fireplug.n.01",            # an upright hydrant for drawing water
    "stop sign": "street_sign.n.01",            # (no stop-sign synset) a sign visible from the street
    "parking meter": "parking_meter.n.01",      # a coin-operated timer next to a parking space
    "bench": "bench.n.01",                      # a long seat for more than one person
    "bird": "bird.n.01",                        # warm-blooded egg-laying vertebrates ... feathers
    "cat": "cat.n.01",                          # feline mammal
    "dog": "dog.n.01",                          # a member of the genus Canis
    "horse": "horse.n.01",                      # solid-hoofed herbivorous quadruped
    "sheep": "sheep.n.01",                      # woolly usually horned ruminant mammal
    "cow": "cow.n.01",                          # female of domestic cattle
    "elephant": "elephant.n.01",                # five-toed pachyderm
    "bear": "bear.n.01",                        # massive plantigrade carnivorous mammals
    "zebra": "zebra.n.01",                      # black-and-white striped African equines
    "giraffe": "giraffe.n.01",                  # tallest living quadruped
    "backpack": "backpack.n.01",                # a bag carried by a strap on your back
    "umbrella": "umbrella.n.01",                # a lightweight handheld collapsible canopy
    "handbag": "bag.n.04",                      # container for carrying money and small items
    "tie": "necktie.n.01",                      # neckwear ... worn under a collar
    "suitcase": "bag.n.06",                     # portable rectangular container for clothes
    "frisbee": "frisbee.n.01",                  # a light, plastic disk
    "skis": "ski.n.01",                         # runners used in pairs for gliding over snow
    "snowboard": "snowboard.n.01",              # a board that resembles a broad ski
    "sports ball": "ball.n.01",                 # round object hit or thrown or kicked in games
    "kite": "kite.n.03",                        # plaything ... flown in the wind
    "baseball bat": "baseball_bat.n.01",        # an implement used in baseball by the batter
    "baseball glove": "baseball_glove.n.01",    # handwear used by fielders in baseball
    "skateboard": "skateboard.n.01",            # a board with wheels
    "surfboard": "surfboard.n.01",              # a narrow buoyant board for riding surf
    "tennis racket": "tennis_racket.n.01",      # a racket used to play tennis
    "bottle": "bottle.n.01",                    # glass or plastic vessel for drinks
    "wine glass": "wineglass.n.01",             # a glass that has a stem, in which wine is served
    "cup": "cup.n.01",                          # small open container used for drinking
    "fork": "fork.n.01",                        # cutlery used for serving and eating food
    "knife": "knife.n.01",                      # edge tool used as a cutting instrument
    "spoon": "spoon.n.01",                      # cutlery with a shallow bowl-shaped container
    "bowl": "bowl.n.01",                        # a round vessel open at the top, holding food
    "banana": "banana.n.02",                    # elongated crescent-shaped yellow fruit
    "apple": "apple.n.01",                      # fruit with red or yellow or green skin
    "sandwich": "sandwich.n.01",                # two (or more) slices of bread with a filling
    "orange": "orange.n.01",                    # round yellow to orange fruit of citrus trees
    "broccoli": "broccoli.n.02",                # branched green undeveloped flower heads (food)
    "carrot": "carrot.n.01",                    # deep orange edible root
    "hot dog": "hotdog.n.02",                   # a frankfurter served hot on a bun
    "pizza": "pizza.n.01",                      # Italian open pie
    "donut": "doughnut.n.02",                   # a small ring-shaped friedcake
    "cake": "cake.n.03",                        # baked goods made from flour, sugar, eggs
    "chair": "chair.n.01",                      # a seat for one person, with a back
    "couch": "sofa.n.01",                       # an upholstered seat for more than one person
    "potted plant": "pot_plant.n.01",           # a plant suitable for growing in a flowerpot
    "bed": "bed.n.01",                          # furniture that provides a place to sleep
    "dining table": "dining_table.n.01",        # a table at which meals are served
    "toilet": "toilet.n.02",                    # a plumbing fixture (not the room, toilet.n.01)
    "tv": "television_receiver.n.01",           # device that receives television signals
    "laptop": "laptop.n.01",                    # a portable computer
    "mouse": "mouse.n.04",                      # hand-operated device controlling the cursor
    "remote": "remote_control.n.01",            # device to control a machine from a distance
    "keyboard": "computer_keyboard.n.01",       # data input device for computers
    "cell phone": "cellular_telephone.n.01",    # a hand-held mobile radiotelephone
    "microwave": "microwave.n.02",              # kitchen appliance (not the wave, .n.01)
    "oven": "oven.n.01",                        # kitchen appliance used for baking or roasting
    "toaster": "toaster.n.02",                  # kitchen appliance for toasting bread
    "sink": "sink.n.01",                        # plumbing fixture with a water basin
    "refrigerator": "refrigerator.n.01",        # white goods in which food can be stored cold
    "book": "book.n.02",                        # physical object: pages bound together
    "clock": "clock.n.01",                      # a timepiece that shows the time of day
    "vase": "vase.n.01",                        # an open jar used as an ornament or for flowers
    "scissors": "scissors.n.01",                # an edge tool having two crossed pivoting blades
    "teddy bear": "teddy.n.01",                 # a child's toy bear
    "hair drier": "hand_blower.n.01",           # hand-held electric blower for the hair
    "toothbrush": "toothbrush.n.01",            # small brush; used to clean teeth
}

# Caption words (or noun lemmas, or underscore-joined word pairs) whose first WordNet noun
# sense is wrong in photo captions, or that should never be tags (None). Checked on the most
# frequent words of the COCO val2014 captions. Words naming a COCO category already take
# `COCO_CATEGORY_SYNSETS`, and need no entry here.
SENSE_OVERRIDES: dict[str, str | None] = {
    # colours: their adjective reading dominates, but the colour is a useful tag;
    # first senses of "white" (a Caucasoid person), "grey" (a writer) and "tan" (suntan) are wrong
    "white": "white.n.02", "black": "black.n.01", "red": "red.n.01", "green": "green.n.01",
    "blue": "blue.n.01", "yellow": "yellow.n.01", "brown": "brown.n.01", "pink": "pink.n.01",
    "purple": "purple.n.01", "aqua": "greenish_blue.n.01", "gray": "gray.n.01",
    "grey": "gray.n.01", "tan": "tan.n.02",
    # shapes (the sample dataset): "square" is also an adjective
    "square": "square.n.01",
    # wrong first sense                         first sense, for the record
    "table": "table.n.02",                      # table.n.01: a set of data in rows and columns
    "plate": "plate.n.04",                      # home_plate.n.01 (baseball)
    "board": "board.n.03",                      # board.n.01: a committee
    "court": "court.n.04",                      # court.n.01: a judicial assembly
    "racket": "racket.n.04",                    # racket.n.01: a loud noise
    "racquet": "racket.n.04",
    "bat": "bat.n.05",                          # bat.n.01: the mammal (captions: baseball bats)
    "glass": "glass.n.02",                      # glass.n.01: the material
    "plant": "plant.n.02",                      # plant.n.01: an industrial building
    "track": "track.n.09",                      # path.n.04: a route (captions: railway tracks)
    "television": "television_receiver.n.01",   # television.n.01: broadcasting
    "bike": "bicycle.n.01",                     # motorcycle.n.01
    "men": "man.n.01",                          # "men" is itself a lemma of work_force.n.01
    "cell": "cellular_telephone.n.01",          # cell.n.01: a small compartment ("cell phone")
    "sign": "sign.n.02",                        # sign.n.01: a perceptible indication
    "hydrant": "fireplug.n.01",                 # water_faucet.n.01
    "doughnut": "doughnut.n.02",                # ring.n.02: a toroidal shape
    "hotdog": "hotdog.n.02",                    # hotdog.n.01: someone who performs stunts
    "controller": "control.n.09",               # accountant.n.01 (captions: game controllers)
    "air": "air.n.02",                          # air.n.01: the gas ("in the air": the region)
    "van": "van.n.05",                          # avant-garde.n.01
    "trailer": "trailer.n.03",                  # dawdler.n.01
    "hood": "hood.n.09",                        # hood.n.01: a young criminal (car hoods)
    "flock": "flock.n.02",                      # flock.n.01: a church congregation
    "dock": "dock.n.05",                        # dock.n.01: the defendant's enclosure in court
    "pitch": "pitch.n.02",                      # pitch.n.01: of a sound (baseball pitches)
    "yard": "yard.n.02",                        # yard.n.01: the unit of length
    "case": "case.n.05",                        # case.n.01: an occurrence
    "reflection": "reflection.n.05",            # contemplation.n.02
    "gear": "gear.n.04",                        # gear.n.01: a toothed wheel
    "net": "net.n.05",                          # internet.n.01 (captions: tennis nets)
    "branch": "branch.n.02",                    # branch.n.01: of an organisation
    "step": "step.n.04",                        # measure.n.01: a maneuver toward a goal
    # plurals that are lemmas of their own (the singular is taken otherwise: hands -> hand)
    "glasses": "spectacles.n.01",
    "shorts": "short_pants.n.01",
    "pants": "trouser.n.01",
    "woods": "forest.n.01",
    "sunglasses": "sunglasses.n.01",           # not sunglass.n.01, a burning lens
    "fries": "french_fries.n.01",               # "fries" lemmatises to fry.n.01, a painter
    "slice": "piece.n.08",                      # slice.n.01: a share (piece.n.08: a serving cut)
    "light": "light.n.02",                      # light.n.01: electromagnetic radiation
    # two-word names WordNet lacks
    "cell_phone": "cellular_telephone.n.01",
    "stop_sign": "street_sign.n.01",
    "wine_glass": "wineglass.n.01",
    "potted_plant": "pot_plant.n.01",
    "hair_dryer": "hand_blower.n.01",
    "double_decker": "bus.n.01",                # WordNet has "double-decker" as a bus lemma
    "remote_control": "remote_control.n.01",    # "remote" is mostly an adjective
    "trash_can": "ashcan.n.01",                 # "can" is a stopword
    "garbage_can": "ashcan.n.01",
    # words about the photo, quantities and positions, not things in it
    **dict.fromkeys(
        ["picture", "photo", "photograph", "image", "view", "shot", "background", "lot", "lots",
         "bunch", "couple", "group", "pair", "piece", "item", "stuff", "thing", "kind", "variety",
         "type", "sort", "part", "set", "area", "front", "top", "side", "middle", "back", "end",
         "way", "close", "one", "number", "time", "past", "place", "spot", "direction",
         "public", "trick", "double", "decker", "control", "half"]),
}
