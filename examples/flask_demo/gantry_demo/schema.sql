CREATE TABLE items (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    image TEXT NOT NULL
);

INSERT INTO items (sku, name, price_cents, image) VALUES
    ('CB-001', 'Crème brûlée', 650, 'img/products/crème brûlée.svg'),
    ('ES-002', 'Espresso', 250, 'img/products/espresso.svg'),
    ('TA-003', 'Tarte Tatin', 720, 'img/products/tarte-tatin.svg');
